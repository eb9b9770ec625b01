"""Report: the static HTML early-warning report (Plotly, offline) read from a built catalogue, with small
numbers suppressed for sharing beyond the council.
May import: ``analytics`` (the same limits and known-date rules) and ``settings``; never the generator.
"""
