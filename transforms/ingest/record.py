"""One typed record per landed file, carried through the ingest stages (read -> validate -> load).

Each stage fills in its part and hands the record on; between Airflow tasks it travels through XCom as
``to_dict()`` (small: paths, counts and verdicts, never data; the data waits in the repository's staging
area). Nothing else is shared between the stages.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from transforms.ingest.landing import Arrival


@dataclass
class TableOutcome:
    """What validation decided for one table of a file."""

    rows_in: int
    rows_loaded: int
    rows_quarantined: int
    gx_success: bool      # every expectation met (structure included)
    clean: str            # staged Parquet of the clean rows (typed, pseudonymised)
    summary: str          # one line for the task log


@dataclass
class LandedFile:
    """A file on its way through the stages.

    - read: ``raw`` (table -> staged raw Parquet), ``rows_in``, ``meta`` from the reader; or ``problem``
      (the file is rejected whole, its rows counted as quarantined) or ``duplicate_of``;
    - validate: ``normalised`` (cosmetic variants made canonical, counted), ``tables`` (one
      ``TableOutcome`` each) and ``quarantine_rows`` (staged Parquet of the rows a check rejected);
    - load: commits it and returns its ledger row.
    """

    load_id: str
    arrival: Arrival
    received_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    raw: dict[str, str] = field(default_factory=dict)
    rows_in: int = 0
    meta: dict[str, str] = field(default_factory=dict)
    tables: dict[str, TableOutcome] = field(default_factory=dict)
    quarantine_rows: str | None = None
    normalised: dict[str, int] = field(default_factory=dict)   # "FIELD: kind" -> values made canonical
    problem: str | None = None
    duplicate_of: str | None = None

    @property
    def readable(self) -> bool:
        """Read into raw tables: neither rejected whole nor a duplicate."""
        return self.problem is None and self.duplicate_of is None and bool(self.raw)

    def reject(self, problem: str, rows_in: int) -> "LandedFile":
        """Reject the file whole; its ``rows_in`` rows still count, as quarantined, in the ledger."""
        self.problem, self.rows_in = problem, rows_in
        return self

    def to_dict(self) -> dict:
        out = asdict(self)
        out["arrival"] = self.arrival.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "LandedFile":
        return cls(**{**d, "arrival": Arrival.from_dict(d["arrival"]),
                      "tables": {k: TableOutcome(**v) for k, v in (d.get("tables") or {}).items()}})
