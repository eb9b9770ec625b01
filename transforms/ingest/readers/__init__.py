"""Readers turn a landed file into raw tables: one DataFrame of strings per table, with ``source_row``.

Readers never judge values; they only find them. Typing and checks happen in ``transforms.ingest.validate`` so
that every rejected value is quarantined with its row and field rather than lost in a parser.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


class UnreadableFile(ValueError):
    """The file's structure is wrong for the format it claims: the whole file is rejected."""


@dataclass
class RawTables:
    tables: dict[str, pd.DataFrame]
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(len(df) for df in self.tables.values())
