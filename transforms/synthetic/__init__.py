"""Synthetic: generated returns in their real formats (``generator``, ``linked``), councils with a known
decline for evaluating early warning (``scenarios``), and ``make demo`` (``demo``).
May import any wing; no module outside this wing, ``tests`` and ``bench`` imports it.
"""
