"""Every example query in README.md runs on a demo-sized repository and returns rows, in DuckDB 2.x (the
project's own) and in the DuckDB 1.4 LTS and 1.5 clients analysts have (each in its own venv under
var/clients, installed from PyPI on first use).

The repository is what ``make demo`` builds, from the same landing area: its councils, 301 (the README's
council) and two of its statistical neighbours, its three return years of every child-level collection, the
published EES files and statistical neighbours from ../shared, one file the demo makes to be rejected and
one CIN census resubmitted after the first load.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml
from conftest import EES, ROOT, SHARED, need

pytestmark = pytest.mark.timeout(3600)  # the module fixture builds a repository: minutes on a busy machine

README = ROOT / "README.md"
CLIENTS = ROOT / "var" / "clients"
CLIENT_VERSIONS = ("1.4.4", "1.5.6")  # DuckDB's LTS line and the release PyPI's duckdb-cli bundles


def readme_queries(text: str | None = None) -> list[tuple[str, str]]:
    """The ```sql blocks of the README's section for analysts as (title, statement): each statement's leading
    ``--`` lines are its title."""
    text = README.read_text(encoding="utf-8") if text is None else text
    text = text[text.index("## For analysts"):]
    text = text[:text.index("\n## ", 1)]
    queries = []
    for block in re.findall(r"```sql\n(.*?)```", text, flags=re.S):
        for chunk in block.split(";"):
            lines = [line for line in chunk.strip().splitlines() if line.strip()]
            title = " ".join(line.strip()[2:].strip() for line in lines if line.strip().startswith("--"))
            sql = "\n".join(line for line in lines if not line.strip().startswith("--")).strip()
            if sql:
                queries.append((title or sql.splitlines()[0], sql))
    return queries


QUERIES = readme_queries()


def test_the_readme_has_its_example_queries_each_with_a_title():
    assert len(QUERIES) >= 8
    assert all(title and not title.upper().startswith(("SELECT", "WITH")) for title, _ in QUERIES)


def test_indicator_names_in_the_readme_are_the_catalogues():
    declared = {i["id"] for i in yaml.safe_load((ROOT / "schemas/indicators/indicators.yaml").read_text())["indicators"]}
    named = set()
    for _, sql in QUERIES:
        for match in re.finditer(r"indicator\s*(?:=|IN)\s*\(?((?:\s*'[^']+'\s*,?)+)", sql):
            named |= set(re.findall(r"'([^']+)'", match.group(1)))
    assert named, "the README's queries name no indicator"
    assert named <= declared, f"not in schemas/indicators/indicators.yaml: {sorted(named - declared)}"


def test_the_readme_council_is_one_the_demo_generates():
    from transforms.synthetic.demo import DEMO_COUNCILS, README_COUNCIL

    assert README_COUNCIL in DEMO_COUNCILS
    councils = {c for _, sql in QUERIES for c in re.findall(r"la_code\s*=\s*'(\d{3})'", sql)}
    assert councils == {README_COUNCIL}


# -- a built demo-sized repository --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory) -> Path:
    """The demo's landing area through the ingest the DAGs run, then the resubmission, then the catalogue."""
    from transforms.run import ingest
    from transforms.synthetic.demo import DEMO_COUNCILS, DEMO_YEARS, land_resubmission, prepare_landing

    need(EES)
    need(SHARED / "reference" / "statistical_neighbours")
    root = tmp_path_factory.mktemp("demo")
    landing, repo = root / "landing", root / "repository"
    prepare_landing(landing, la_codes=DEMO_COUNCILS, years=DEMO_YEARS, shared=SHARED)
    ingest(landing, repo, refresh=False)
    land_resubmission(landing, DEMO_COUNCILS[0])
    ingest(landing, repo, only_new=True)
    return repo


@pytest.fixture(scope="module")
def catalogue(demo_repo) -> Path:
    return demo_repo / "csreturns.duckdb"


@pytest.mark.slow
@pytest.mark.parametrize("title,sql", QUERIES, ids=[t[:60] for t, _ in QUERIES])
def test_each_readme_query_returns_rows(catalogue, title, sql):
    with duckdb.connect(str(catalogue), read_only=True) as con:
        rows = con.execute(sql).fetchall()
    assert rows, f"no rows: {title}"


@pytest.mark.slow
def test_the_demo_landing_has_a_rejected_file_and_a_resubmission(catalogue):
    with duckdb.connect(str(catalogue), read_only=True) as con:
        ledger = dict(con.execute("SELECT relpath, status FROM load_ledger").fetchall())
    rejected = [p for p, s in ledger.items() if p.endswith("episodes_resent.csv")]
    assert rejected and all(ledger[p] == "rejected" for p in rejected)
    resubmitted = [p for p in ledger if p.endswith("_resubmission.xml")]
    assert len(resubmitted) == 1 and ledger[resubmitted[0]] in ("loaded", "partly_loaded")


@pytest.mark.slow
def test_the_neighbours_query_keeps_one_source_per_council_and_says_which(catalogue):
    title, sql = next((t, q) for t, q in QUERIES if t.startswith("re-referrals for council"))
    with duckdb.connect(str(catalogue), read_only=True) as con:
        result = con.execute(sql)
        columns = [d[0] for d in result.description]
        rows = [dict(zip(columns, r)) for r in result.fetchall()]
    sources = {c for c in columns if c.endswith("source")}
    assert sources, f"the query does not say which source it used: {columns}"
    for row in rows:
        assert row["council_301_source"] in ("child_level", "published"), row  # one source, named
        named = set((row["neighbours_source"] or "").split(" and ")) - {""}
        assert named <= {"child_level", "published"}, row  # each neighbour's one source, listed
    assert {row["council_301_source"] for row in rows} == {"child_level"}  # the demo holds 301's returns
    assert any(row["england"] is not None for row in rows)


@pytest.mark.slow
def test_england_is_a_named_row_of_the_published_statistics(catalogue):
    with duckdb.connect(str(catalogue), read_only=True) as con:
        names = con.execute("""SELECT DISTINCT la_name FROM published_statistics
                               WHERE geographic_level = 'National'""").fetchall()
    assert names == [("England",)]


@pytest.mark.slow
def test_warn_runs_on_the_demo_repository(demo_repo, capsys):
    from transforms.cli import main

    assert main(["warn", "--repo", str(demo_repo)]) == 0
    assert capsys.readouterr().out.startswith("Live concerns at ")


@pytest.mark.slow
def test_councils_name_every_council_with_its_neighbours_and_reorganisations(catalogue):
    with duckdb.connect(str(catalogue), read_only=True) as con:
        rows = {r[0]: r[1:] for r in con.execute("""SELECT la_code, la_name, region, statistical_neighbours,
                                                            predecessors, successors FROM councils""").fetchall()}
    assert rows["301"][:2] == ("Barking and Dagenham", "Outer London")
    assert rows["301"][2][:3] == ["308", "821", "313"]  # DfE's 2025 groupings, closest first
    assert rows["940"][3] == ["928"] and rows["928"][4] == ["940", "941"]  # Northamptonshire, 1 April 2021


# -- the DuckDB clients analysts have -----------------------------------------------------------------------
def client_python(version: str) -> Path:
    """A venv with only ``duckdb==version`` under var/clients (made on first use); skips when PyPI is out of reach."""
    venv = CLIENTS / f"duckdb-{version}"
    python = venv / "bin" / "python"
    probe = [str(python), "-c", f"import duckdb; assert duckdb.__version__ == {version!r}"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    result = subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"duckdb=={version}"],
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.skip(f"duckdb {version} could not be installed into {venv}: {result.stderr[-500:]}")
    return python


CLIENT_SCRIPT = """
import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
out = {}
for title, sql in json.load(sys.stdin):
    try:
        out[title] = len(con.execute(sql).fetchall())
    except Exception as exc:
        out[title] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"version": duckdb.__version__, "rows": out}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("version", CLIENT_VERSIONS)
def test_readme_queries_run_in_the_duckdb_clients_analysts_have(catalogue, version):
    python = client_python(version)
    result = subprocess.run([str(python), "-c", CLIENT_SCRIPT, str(catalogue)], input=json.dumps(QUERIES),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout)
    assert answer["version"] == version
    failed = {t: n for t, n in answer["rows"].items() if not isinstance(n, int) or n == 0}
    assert not failed, f"duckdb {version}: {failed}"


@pytest.mark.slow
def test_the_duckdb_cli_opens_the_catalogue(catalogue):
    cli = Path(sys.executable).parent / "duckdb"
    if not cli.exists():
        pytest.skip(f"no DuckDB CLI at {cli} (pip install -c constraints.txt duckdb-cli, or make demo)")
    result = subprocess.run([str(cli), "-readonly", "-json", str(catalogue), "-c",
                             "SELECT count(*) AS n FROM relations"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HOME": str(catalogue.parent)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["n"] > 50
