"""Telling people when something needs them: a task that failed, or a council's return that is overdue.

E-mails go through Airflow's SMTP provider (connection ``smtp_default``, e.g. from
``AIRFLOW_CONN_SMTP_DEFAULT``) to the addresses in ``CSRETURNS_ALERT_EMAIL``. With no addresses set the
alert is only logged, so a laptop or CI run never needs a mail server.

Overdue returns are computed from the schemas, not configured twice: a collection's ``cadence`` says when
its return year ends ("annual to 31 March") and ``due`` ("06-30") the first such day after that end by
which the return must be in. Every council seen in the ledger is expected to send every collection that
declares a due date, for each year since it first appears.
"""
from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import quote

from airflow.sdk.exceptions import AirflowFailException

from transforms import schema, settings
from transforms.orchestration import airflow_api

log = logging.getLogger(__name__)

ALERT_EMAIL_ENV = "CSRETURNS_ALERT_EMAIL"
SMTP_CONN_ENV = "CSRETURNS_SMTP_CONN_ID"
MONTHS = {m: i for i, m in enumerate(["january", "february", "march", "april", "may", "june", "july", "august",
                                      "september", "october", "november", "december"], start=1)}


# -- sending -------------------------------------------------------------------------------------------
def recipients() -> list[str]:
    return settings.current().alert_recipients


def send(subject: str, body_html: str) -> bool:
    """E-mail the alert list; ``False`` (and a log line) when nobody is configured to receive it."""
    to = recipients()
    if not to:
        log.info("%s is not set; alert not e-mailed: %s", ALERT_EMAIL_ENV, subject)
        print(f"{ALERT_EMAIL_ENV} is not set; alert not e-mailed: {subject}")
        return False
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=settings.current().smtp_conn_id) as hook:
        hook.send_email_smtp(to=to, subject=subject, html_content=body_html,
                             from_email=hook.from_email or "csreturns@localhost")
    log.info("alert e-mailed to %s: %s", ", ".join(to), subject)
    return True


# -- task failures -------------------------------------------------------------------------------------
class ReturnsOverdue(AirflowFailException):
    """Raised by the returns_due check: the run shows red without retrying, and since its own e-mail
    already lists the returns, the generic failure alert stays quiet."""


class FilesRejected(AirflowFailException):
    """Raised by a collection DAG's ``rejected_files`` task: files were rejected whole. Failing (without
    retries) makes the run red and sends the failure e-mail, whose error line lists the files and reasons."""


RUN_NOTE_CONN = airflow_api.CONN_ID       # HTTP connection to the Airflow API, for the DAG run's note
NOTE_LIMIT = 1000                         # characters Airflow keeps in a DAG run's note


def run_note(collection_id: str, rows: list[dict]) -> str | None:
    """The DAG run's note when the run rejected a file or quarantined rows (None otherwise): Markdown naming
    each such file (ledger ``relpath``) with its reason or quarantined count, never a child's identifier;
    cut to ``NOTE_LIMIT`` characters with how many more there were."""
    rejected = [r for r in rows if r["status"] == "rejected"]
    partly = [r for r in rows if r["status"] != "rejected" and r["rows_quarantined"]]
    if not rejected and not partly:
        return None
    lines = [f"**{collection_id}**: {len(rejected)} file(s) rejected, {len(partly)} with quarantined rows "
             f"(of {len(rows)} in this run)"]
    items = ([f"- rejected `{r['relpath']}`: {r.get('reason') or '(no reason recorded)'}" for r in rejected]
             + [f"- `{r['relpath']}`: {r['rows_quarantined']} of {r['rows_in']} rows quarantined" for r in partly])
    for i, item in enumerate(items):
        more = f"- and {len(items) - i} more: see the GX results tab"
        if len("\n".join([*lines, item, more])) > NOTE_LIMIT:
            lines.append(more)
            break
        lines.append(item)
    return "\n".join(lines)


def set_run_note(dag_id: str, run_id: str, note: str) -> bool:
    """Write ``note`` on the DAG run through the Airflow API (``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}``)
    at the HTTP connection ``csreturns_airflow_api`` (host: the api-server's base URL; login and password of
    a user who may edit runs, exchanged for a token at ``/auth/token``; none where the api-server lets every
    request in). Tasks cannot write notes otherwise. ``False``, logged, when the connection is not set or
    the API refuses: the failing ``rejected_files`` task and its e-mail still say it."""
    try:
        airflow_api.call("PATCH", f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}",
                         json={"note": note}, params={"update_mask": "note"})
    except airflow_api.Unavailable as exc:
        print(f"DAG run note not written: {exc}")
        return False
    print("DAG run note written")
    return True


def report_rejections(collection_id: str, rows: list[dict], dag_id: str | None = None,
                      run_id: str | None = None) -> dict:
    """Print each rejected file and each file with quarantined rows (ledger ``relpath``, status, reason: never
    a child's identifier), write them as the DAG run's note (``run_note``; ``dag_id`` and ``run_id`` given),
    then raise ``FilesRejected`` naming the rejected files, and the files with quarantined rows, when
    there are any rejected.

    ``rows``: the load task's ledger rows (``relpath``, ``status``, ``reason``, ``rows_in``,
    ``rows_quarantined``). Returns ``{"files", "rejected", "with_quarantined_rows", "rows_quarantined"}``."""
    rejected = [r for r in rows if r["status"] == "rejected"]
    partly = [r for r in rows if r["status"] != "rejected" and r["rows_quarantined"]]
    for r in partly:
        print(f"quarantined {r['rows_quarantined']} of {r['rows_in']} rows: {r['relpath']}")
    for r in rejected:
        print(f"REJECTED {r['relpath']}: {r.get('reason') or '(no reason recorded)'}")
    summary = {"files": len(rows), "rejected": len(rejected), "with_quarantined_rows": len(partly),
               "rows_quarantined": sum(r["rows_quarantined"] for r in rows)}
    print(f"{collection_id}: {summary}")
    note = run_note(collection_id, rows)
    if note and dag_id and run_id:
        set_run_note(dag_id, run_id, note)
    if rejected:
        listed = "; ".join(f"{r['relpath']}: {r.get('reason') or '(no reason recorded)'}" for r in rejected[:20])
        more = f"; and {len(rejected) - 20} more" if len(rejected) > 20 else ""
        quarantined = (f". Also {len(partly)} file(s) with quarantined rows: "
                       + "; ".join(f"{r['relpath']} ({r['rows_quarantined']} of {r['rows_in']} rows)" for r in partly[:20])
                       if partly else "")
        raise FilesRejected(f"{len(rejected)} file(s) of {collection_id} rejected whole: {listed}{more}{quarantined}")
    return summary


def failure_message(context) -> tuple[str, str]:
    ti = context["ti"]
    task = ti.task_id + (f"[{ti.map_index}]" if getattr(ti, "map_index", -1) not in (None, -1) else "")
    submission = getattr(ti, "rendered_map_index", None)  # e.g. "ssda903 2025: 1 council(s), 11 file(s)"
    error = context.get("exception")
    subject = f"[csreturns] {ti.dag_id}.{task} failed (try {ti.try_number})"
    rows = [("DAG", ti.dag_id), ("Task", task + (f" - {submission}" if submission else "")), ("Run", ti.run_id),
            ("Try", str(ti.try_number)),
            ("Error", f"{type(error).__name__}: {error}" if error else "(no exception recorded)")]
    table = "".join(f"<tr><th align='left'>{k}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    link = html.escape(ti.log_url)
    intro = "A csreturns task failed."
    if isinstance(error, FilesRejected):
        subject = f"[csreturns] {ti.dag_id}: files rejected ({ti.run_id})"
        intro = ("Files of this run were rejected whole; the rest of the run loaded. Each file and its reason "
                 "(and any file with quarantined rows) is listed below, on the DAG run's note and on its GX "
                 "results tab.")
    return subject, f"<p>{intro}</p><table>{table}</table><p>Log: <a href='{link}'>{link}</a></p>"


def notify_failure(context) -> None:
    """``on_failure_callback`` for every csreturns DAG. Never raises: a broken mail server must not
    hide the original failure."""
    if isinstance(context.get("exception"), ReturnsOverdue):
        return
    try:
        send(*failure_message(context))
    except Exception:  # noqa: BLE001
        log.exception("could not send the failure alert")


# -- overdue returns -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class OverdueReturn:
    collection: str
    la_code: str
    return_year: int
    due: date
    days_overdue: int
    state: str            # "missing": nothing arrived; "rejected": files arrived but none could be loaded


def year_end(cadence: str, return_year: int) -> date:
    """The day a return year is counted to, from the cadence's words: 'annual to 31 March' (SSDA903, CIN),
    'annual at 30 September' (CSWW census day), 'annual (January census day)' (SEN2: the 1st of the month)."""
    match = re.search(r"(?:(\d{1,2}) )?(" + "|".join(MONTHS) + r")\b", cadence, re.IGNORECASE)
    if not match:
        raise schema.SchemaError(f"cadence {cadence!r} names no month, so a due date cannot be placed after it")
    return date(return_year, MONTHS[match[2].lower()], int(match[1] or 1))


def year_label(coll: schema.Collection, return_year: int) -> str:
    """'2024-25' for a year counted to a day ('annual to 31 March'); the census year otherwise."""
    spans_two_years = re.search(r"\bto \d", coll.cadence)
    return f"{return_year - 1}-{return_year % 100:02d}" if spans_two_years else str(return_year)


def due_date(coll: schema.Collection, return_year: int) -> date | None:
    """The first ``due`` (MM-DD) after the return year ends; None for collections with no fixed deadline
    (no ``due``, or e.g. Annex A's "on request")."""
    due = str(coll.spec.get("due") or "")
    if not re.fullmatch(r"\d{2}-\d{2}", due):
        return None
    end = year_end(coll.cadence, return_year)
    month, day = (int(x) for x in due.split("-"))
    candidate = date(end.year, month, day)
    return candidate if candidate > end else date(end.year + 1, month, day)


def overdue_returns(repo: Path | str, today: date, collections: list[str] | None = None) -> list[OverdueReturn]:
    """Returns past their due date that have not been loaded, oldest deadline first."""
    from transforms.store.repository import Repository

    ledger = Repository(repo).ledger()
    councils = ledger[ledger["la_code"].notna() & ledger["return_year"].notna()
                      & (ledger["collection"].fillna("") != "published")]
    if councils.empty:
        return []
    first_year = councils.groupby("la_code")["return_year"].min().astype(int).to_dict()
    arrived = councils.groupby(["collection", "la_code", "return_year"])["status"].agg(set).to_dict()
    overdue = []
    for coll_id in collections or schema.collections():
        coll = schema.collection(coll_id)
        if due_date(coll, 2000) is None:
            continue
        for la_code, since in sorted(first_year.items()):
            year = max(since, int(coll.spec.get("first_year", since)))
            while (due := due_date(coll, year)) < today:
                statuses = arrived.get((coll_id, la_code, year), set())
                if not statuses & {"loaded", "partly_loaded"}:
                    overdue.append(OverdueReturn(coll_id, la_code, year, due, (today - due).days,
                                                 "rejected" if statuses else "missing"))
                year += 1
    return sorted(overdue, key=lambda r: (r.due, r.collection, r.la_code))


def overdue_message(overdue: list[OverdueReturn], today: date) -> tuple[str, str]:
    councils = len({r.la_code for r in overdue})
    subject = f"[csreturns] {len(overdue)} return(s) overdue from {councils} council(s) at {today:%d %B %Y}"
    rows = "".join(
        f"<tr><td>{r.la_code}</td><td>{html.escape(schema.collection(r.collection).title)}</td>"
        f"<td>{year_label(schema.collection(r.collection), r.return_year)}</td><td>{r.due:%d %b %Y}</td>"
        f"<td align='right'>{r.days_overdue}</td><td>{r.state}</td></tr>" for r in overdue)
    body = ("<p>These statutory returns are past their due date and have not been loaded.</p>"
            "<table><tr><th>LA</th><th>Collection</th><th>Year</th><th>Due</th><th>Days overdue</th>"
            f"<th>State</th></tr>{rows}</table>"
            "<p>'rejected': files arrived but none could be loaded; see load_ledger and quarantine.</p>")
    return subject, body


def check_returns_due(repo: Path | str, today: date) -> list[OverdueReturn]:
    """The daily check: print the overdue returns, e-mail them, and raise so the run shows red."""
    overdue = overdue_returns(repo, today)
    for r in overdue:
        print(f"OVERDUE {r.collection} {r.la_code} {r.return_year}: due {r.due}, {r.days_overdue} days, {r.state}")
    if not overdue:
        print(f"no returns overdue at {today}")
        return overdue
    subject, body = overdue_message(overdue, today)
    send(subject, body)
    raise ReturnsOverdue(subject)
