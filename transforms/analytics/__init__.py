"""Analytics: indicators per council and period, early-warning signals (SPC on the council's own history,
funnels against England) and a risk score per council, each computed in DuckDB over a catalogue connection.
May import: ``schema``, ``sql``, ``workdays``; it reads relations by name, never the store or ingest.
"""
