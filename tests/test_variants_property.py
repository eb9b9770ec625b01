"""Property: whatever a council's export or a hand edit does to a return, ingest never crashes, every ledger row
accounts for its rows (``rows_in = rows_loaded + rows_quarantined``), and no edited cell's text reaches a
ledger reason, a quarantine message or a log line (issue 11).

Inputs are random mutations of the shared samples (SSDA903 CSVs, a CIN census message): cell edits, dropped
and duplicated columns, another encoding, truncation, junk lines. A handful of examples run in the default
suite; ``make fuzz`` runs the same property for a few minutes (``HYPOTHESIS_PROFILE=fuzz``, ``FUZZ_EXAMPLES``)
and hypothesis' statistics report how many inputs it tried.
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import EES, SAMPLES, need

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from transforms.ingest.landing import discover  # noqa: E402
from transforms.run import ingest_batch  # noqa: E402
from transforms.store.repository import Repository  # noqa: E402

settings.register_profile("default", max_examples=6, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("fuzz", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "250")), deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

LINES = 8   # data lines kept of each CSV sample: small inputs, many of them


def _csv_sample(name: str) -> str:
    text = need(SAMPLES / "ssda903" / name).read_text(encoding="utf-8-sig")
    return "\n".join(text.splitlines()[:LINES + 1]) + "\n"


SAMPLES_903 = {"header.csv": None, "episodes.csv": None, "reviews.csv": None}
# cell text a mutation writes: long enough that finding it in a message cannot be chance
MARK = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz0123456789é/-. ", min_size=8, max_size=40).map(
    lambda s: "Qz" + s.strip() + "9")


@st.composite
def mutated_csv(draw):
    """(file name, bytes, the texts the mutation wrote)."""
    name = draw(st.sampled_from(sorted(SAMPLES_903)))
    rows = [line.split(",") for line in _csv_sample(name).splitlines()]
    written: list[str] = []
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["edit", "edit", "drop_column", "duplicate_column", "junk_line", "blank_line",
                                   "trailing_comma", "short_row"]))
        width = len(rows[0])
        if op == "edit":
            r, c = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, width - 1))
            value = draw(MARK)
            if c < len(rows[r]):
                rows[r][c] = value
                written.append(value)
        elif op == "drop_column" and width > 1:
            c = draw(st.integers(0, width - 1))
            rows = [row[:c] + row[c + 1:] for row in rows]
        elif op == "duplicate_column":
            c = draw(st.integers(0, width - 1))
            rows = [row[:c + 1] + row[c:c + 1] + row[c + 1:] for row in rows]
        elif op == "trailing_comma":    # an export that ends every data row with a separator
            rows = [rows[0]] + [row + [""] for row in rows[1:]]
        elif op == "short_row" and len(rows) > 1:
            r = draw(st.integers(1, len(rows) - 1))
            rows[r] = rows[r][:draw(st.integers(0, len(rows[r])))]
        elif op == "junk_line":
            value = draw(MARK)
            rows.insert(draw(st.integers(0, len(rows))), [value])
            written.append(value)
        else:
            rows.insert(draw(st.integers(0, len(rows))), [""] * draw(st.integers(1, width)))
    text = "".join(",".join(row) + draw(st.sampled_from(["\n", "\r\n"])) for row in rows)
    data = text.encode(draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16"])), errors="replace")
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return name, data, written


@st.composite
def mutated_cin(draw):
    text = need(SAMPLES / "cin_census" / "CIN_Census_2024.xml").read_text(encoding="utf-8")
    written: list[str] = []
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["edit", "edit", "junk_line"]))
        value = draw(MARK)
        if op == "edit":
            tags = ["LAchildID", "UPN", "PersonBirthDate", "Sex", "Ethnicity", "CINreferralDate", "ReferralSource"]
            tag = draw(st.sampled_from(tags))
            start = text.find(f"<{tag}>")
            if start >= 0:
                end = text.find(f"</{tag}>", start)
                text = text[:start + len(tag) + 2] + value.replace("&", "") + text[end:]
                written.append(value)
        else:
            lines = text.splitlines()
            lines.insert(draw(st.integers(0, len(lines))), value)
            text = "\n".join(lines)
            written.append(value)
    data = text.encode(draw(st.sampled_from(["utf-8", "utf-16"])))
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return "cin.xml", data, written


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        try:
            self.lines.append(record.getMessage())
        except Exception:  # noqa: BLE001 (a log record that cannot format is not this test's concern)
            pass


C1 = "c1_children_in_need_referrals_and_rereferrals_2013_to_2025.csv"


@st.composite
def mutated_ees(draw):
    """A published EES file cut to a few lines and mutated like a return (its values are public: a quoted
    value in a message is no leak, so only crashes and row accounting are checked)."""
    lines = need(EES / C1).read_text(encoding="utf-8-sig").splitlines()[:LINES + 1]
    rows = [line.split(",") for line in lines]
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["edit", "symbol_column", "drop_column", "junk_line", "truncate_row"]))
        width = len(rows[0])
        if op == "edit":
            r, c = draw(st.integers(1, len(rows) - 1)), draw(st.integers(0, width - 1))
            if c < len(rows[r]):
                rows[r][c] = draw(st.sampled_from(["x", "c", "z", "", "-1", "1e9", "n/a", "12,3"])).replace(",", "")
        elif op == "symbol_column":       # a measure wholly suppressed
            c = draw(st.integers(11, width - 1))
            for row in rows[1:]:
                if c < len(row):
                    row[c] = draw(st.sampled_from(["x", "c", "z"]))
        elif op == "drop_column" and width > 1:
            c = draw(st.integers(0, width - 1))
            rows = [row[:c] + row[c + 1:] for row in rows]
        elif op == "junk_line":
            rows.insert(draw(st.integers(1, len(rows))), [draw(MARK)])
        elif len(rows) > 1:
            r = draw(st.integers(1, len(rows) - 1))
            rows[r] = rows[r][:draw(st.integers(0, len(rows[r])))]
    text = "".join(",".join(row) + "\n" for row in rows)
    return C1, text.encode(draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]))), []


def _check(relpath: str, data: bytes, written: list[str]) -> None:
    handler = _Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            landing, repo_root = Path(tmp) / "landing", Path(tmp) / "repo"
            target = landing / relpath
            target.parent.mkdir(parents=True)
            target.write_bytes(data)
            repo = Repository(repo_root)
            rows = ingest_batch(repo, discover(landing))
            assert len(rows) == 1
            messages = [r.get("reason") or "" for r in rows]
            for f in (repo_root / "quarantine").rglob("*.parquet"):
                messages += [m or "" for m in pq.read_table(f, columns=["message"]).column("message").to_pylist()]
    finally:
        root.removeHandler(handler)
    for row in rows:
        assert row["rows_in"] == row["rows_loaded"] + row["rows_quarantined"], row
    said = "\n".join(messages + handler.lines)
    for value in written:
        for form in {value, value.strip(), value.upper()}:
            if len(form) >= 8:
                assert form not in said, f"{form!r} reached a message"


@given(mutated_csv())
def test_mutated_ssda903_csvs_never_crash_never_lose_a_row_and_never_leak_a_cell(sample):
    name, data, written = sample
    _check(f"301/year=2018/{name}", data, written)


@given(mutated_cin())
def test_mutated_cin_census_messages_never_crash_never_lose_a_row_and_never_leak_a_cell(sample):
    name, data, written = sample
    _check(f"201/{name}", data, written)


@given(mutated_ees())
def test_mutated_published_statistics_never_crash_and_never_lose_a_row(sample):
    name, data, written = sample
    _check(f"published/{name}", data, written)
