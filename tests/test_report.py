"""The HTML early-warning report: pages, links, charts drawn from the limits signals were judged by,
small numbers suppressed, and charts that render in a real browser (headless Chromium)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from lxml import html as lxml_html

from transforms.analytics.council_risk import build_council_risk
from transforms.analytics.early_warning import build_early_warning, known_dates
from transforms.analytics.indicators import CATALOGUE_COLUMNS, catalogue_frame
from transforms.cli import main
from transforms.report import html as report
from transforms.sql import create_table_from_frame

AS_OF = date(2025, 3, 31)
MONTHS = pd.date_range("2021-05-31", "2025-03-31", freq="ME")        # 11 lead-in months + 36 rolling windows
# indicator: (monthly denominator per unit of council size, England rate)
RATES = {"rereferral_12m": (120, 0.21), "assessment_45wd": (110, 0.83), "placement_stability_short": (30, 0.10),
         "icpc_15wd": (15, 0.78)}
# Planted changes: (council, indicator) -> (rate at the council, step in the last 9 months)
PLANTED = {("301", "rereferral_12m"): (0.21, 0.10),            # re-referrals jump: own history and England
           ("302", "assessment_45wd"): (0.55, 0.0),             # slow assessments all along: England only
           ("303", "placement_stability_short"): (0.10, 0.30),  # a tiny council: small counts
           ("304", "assessment_45wd"): (0.83, 0.10)}            # faster assessments: an improvement
SIZES = {"301": 2.0, "302": 1.5, "303": 0.04, "304": 1.0, **{str(c): 0.3 + 0.15 * (c % 7) for c in range(305, 318)}}
AGENCY_PUBLISHED = [date(2022, 9, 30), date(2023, 9, 30), date(2024, 9, 30)]   # the last is public only in May 2025


def synthetic_indicators(sizes: dict[str, float], seed: int = 7, planted=PLANTED) -> pd.DataFrame:
    """Monthly counts drawn per council, summed into rolling 12-month and DfE-year windows the way
    ``indicators`` holds them, plus a published workforce figure (agency social workers, FTE) each September."""
    rng = np.random.default_rng(seed)
    rows = []
    for la, size in sizes.items():
        for indicator, (per_month, england) in RATES.items():
            rate, step = planted.get((la, indicator), (float(np.clip(england + rng.normal(0, 0.015), 0.01, 0.99)), 0.0))
            p = np.full(len(MONTHS), rate)
            p[-9:] = np.clip(p[-9:] + step, 0, 1)
            den = rng.poisson(per_month * size, len(MONTHS))
            num = rng.binomial(den, p)
            roll_num = np.convolve(num, np.ones(12), "valid")
            roll_den = np.convolve(den, np.ones(12), "valid")
            for end, n, d in zip(MONTHS[11:], roll_num, roll_den):
                for window in ("rolling_12m",) + (("dfe_year",) if end.month == 3 else ()):
                    rows.append((la, indicator, end.date(), window, float(n), float(d), 100 * n / d if d else None,
                                 "child_level"))
        fte = 40 * size + 5
        for i, end in enumerate(AGENCY_PUBLISHED):
            agency = 0.45 if la == "305" else float(np.clip(0.17 + rng.normal(0, 0.02), 0.01, 0.9))
            rows.append((la, "agency_rate_fte", end, "dfe_year", round(agency * fte, 1), fte,
                         100 * round(agency * fte, 1) / fte, "published"))
    return pd.DataFrame(rows, columns=["la_code", "indicator", "period_end", "window", "numerator", "denominator",
                                       "value", "source"])


def synthetic_catalogue(path: Path, sizes: dict[str, float] = SIZES, seed: int = 7) -> Path:
    """A catalogue file holding planted indicators, and early_warning and council_risk computed from them
    by the real builders: the report reads it exactly as it reads one published from a repository."""
    con = duckdb.connect(str(path))
    try:
        frame = synthetic_indicators(sizes, seed)
        con.register("frame", frame)
        con.execute("CREATE TABLE indicators AS SELECT la_code, indicator, period_end::DATE AS period_end, \"window\", "
                    "numerator, denominator, value, source FROM frame")
        con.unregister("frame")
        create_table_from_frame(con, "indicator_catalogue", catalogue_frame(), CATALOGUE_COLUMNS)
        build_early_warning(con)
        build_council_risk(con)
        # council names come from the catalogue, as in a repository holding the neighbour model
        con.execute("CREATE TABLE statistical_neighbours AS SELECT la_code, 'Council ' || la_code AS la_name, "
                    "2025 AS return_year FROM (SELECT DISTINCT la_code FROM indicators)")
    finally:
        con.close()
    return path


# ---------------------------------------------------------------- the report of a small repository ---------

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    catalogue = synthetic_catalogue(base / "csreturns.duckdb")
    summary = report.write_report(catalogue, base / "report")
    with duckdb.connect(str(catalogue), read_only=True) as con:
        signals = con.execute("SELECT * FROM early_warning WHERE as_of = ?", [AS_OF]).df()
        risk = con.execute("SELECT la_code FROM council_risk WHERE as_of = ? ORDER BY rank, la_code", [AS_OF]).fetchall()
        names = report.council_names(con)
        indicators = con.execute("SELECT * FROM indicators").df()
    return dict(base=base, catalogue=catalogue, out=base / "report", summary=summary, signals=signals,
                ranked=[r[0] for r in risk], names=names, indicators=indicators)


def tree(path: Path):
    return lxml_html.fromstring(path.read_text(encoding="utf-8"))


def text(path: Path) -> str:
    return " ".join(tree(path).text_content().split())


def figures(path: Path) -> dict[str, dict]:
    """The Plotly figures embedded in a page, by chart id, as the browser receives them."""
    page, decoder, out = path.read_text(encoding="utf-8"), json.JSONDecoder(), {}
    for match in re.finditer(r"Plotly\.newPlot\(\s*", page):
        i = match.end()
        div_id, i = decoder.raw_decode(page, i)
        data, i = decoder.raw_decode(page, page.index("[", i))
        layout, i = decoder.raw_decode(page, page.index("{", i))
        out[div_id] = {"data": data, "layout": layout}
    return out


def trace(figure: dict, name: str) -> dict:
    return next(t for t in figure["data"] if t.get("name") == name)


def signal(built, la: str, indicator: str, method: str):
    s = built["signals"]
    return s[(s.la_code == la) & (s.indicator == indicator) & (s.method == method)].iloc[0]


def test_index_ranks_every_council_by_council_risk_and_links_its_page(built):
    rows = tree(built["out"] / "index.html").xpath("//table[@class='ranking']/tbody/tr")
    assert [r.xpath(".//span[@class='code']")[0].text for r in rows] == built["ranked"]
    for row in rows:
        href = row.xpath(".//a/@href")[0]
        assert (built["out"] / href).is_file(), href
    assert built["summary"]["councils"] == len(built["ranked"]) == len(SIZES)


def test_council_page_says_each_indicator_once_in_the_words_of_its_strongest_signal(built):
    s = built["signals"]
    for la in ("301", "302", "304"):
        page = text(built["out"] / "councils" / f"{la}.html")
        assert built["names"][la] in page
        for _, group in s[s.la_code == la].groupby("indicator"):
            strongest = group.sort_values(["severity", "method"], ascending=[False, True]).iloc[0]
            words = re.sub(r"since \d{4}-\d{2}", "since", " ".join(strongest["explanation"].split()))
            assert words.split(" since")[0] in page
    assert "Improvements" in text(built["out"] / "councils" / "304.html")


def test_each_indicator_of_concern_has_one_since_the_earliest_of_its_live_signals(built):
    s = built["signals"]
    concerns = s[(s.la_code == "301") & (s.direction == "concern")]
    items = tree(built["out"] / "councils" / "301.html").xpath("//li[contains(@class, 'concern')]")
    assert len(items) == concerns["indicator"].nunique() >= 1
    for indicator, group in concerns.groupby("indicator"):
        [item] = [i for i in items if any(" ".join(e.split())[:25] in " ".join(i.text_content().split())
                                          for e in group["explanation"])]
        assert re.findall(r"since (\d{4}-\d{2})", item.text_content()) == [f"{group['since'].min():%Y-%m}"]


def test_a_strength_one_signal_reads_watch_never_no_live_concern():
    rows = pd.DataFrame({"indicator": ["missing_from_care"], "method": ["spc_run"], "severity": [1],
                         "explanation": ["Missing from care has been above its usual level for 8 months, since 2024-08"],
                         "since": [pd.Timestamp("2024-08-31")]})
    [row] = report._signal_rows(rows)
    assert row["label"] == "watch"
    council = dict(la_code="302", name="Council 302", score=0.0, score_text="0", rank=2, concerns=1, reasons=[])
    page = report._environment().get_template("index.html").render(
        root="", charts=False, chart=None, councils=[council], with_concerns=1, as_of_text="31 March 2025",
        built="", small_base=report.SMALL_BASE, n_councils=1)
    assert "Watch: 1 indicator(s)" in page and "No live concern" not in page


def test_the_funnel_line_is_named_by_the_councils_it_averages_not_england(built):
    fig = figures(built["out"] / "councils" / "302.html")["funnel-assessment_45wd"]
    names = [t.get("name") or "" for t in fig["data"]]
    assert f"average of the {len(SIZES)} councils in this repository" in names and "England" not in names
    assert "England" not in fig["layout"]["title"]["text"]
    assert f"average of the {len(SIZES)} councils in this repository" in text(built["out"] / "councils" / "302.html")


def test_workforce_figures_are_labelled_at_30_september_not_by_dfe_year(built):
    page = text(built["out"] / "councils" / "305.html")
    assert "at 30 September 2023" in page and "DfE year" not in page


def test_the_ranking_chart_title_names_what_it_shows(built):
    fig = figures(built["out"] / "index.html")["overview"]
    assert re.fullmatch(r"The \d+ councils with the highest risk scores", fig["layout"]["title"]["text"])


def test_council_page_shows_its_published_figures_year_by_year(built):
    """The trend of a council's published figures (here its agency rate, 45 % every year)."""
    [table] = tree(built["out"] / "councils" / "305.html").xpath("//section[@class='trend']//table")
    header = [th.text_content() for th in table.xpath(".//thead//th")]
    ind = built["indicators"]
    public = ind[ind["source"].eq("published") & (known_dates(ind) <= pd.Timestamp(AS_OF))]
    assert header[0] == "Figure" and header[1:] == sorted({str(p.year) for p in public["period_end"]})[-report.TREND_YEARS:]
    assert len(header) > 2
    [row] = [r for r in table.xpath(".//tbody/tr") if r.xpath("./td")[0].text_content().startswith("Agency")]
    last = public[public["la_code"].eq("305") & public["indicator"].eq("agency_rate_fte")].sort_values("period_end")
    cells = [td.text_content() for td in row.xpath("./td")[1:]]
    assert cells[-1] == report.value_text(last["value"].iloc[-1], "percent")
    assert float(cells[-1].rstrip("%")) == pytest.approx(45, abs=0.2)


def test_council_page_says_how_many_factors_its_score_rests_on(built):
    with duckdb.connect(str(built["catalogue"]), read_only=True) as con:
        coverage = dict(con.execute("SELECT la_code, coverage FROM council_risk WHERE as_of = ?", [AS_OF]).fetchall())
    for la, n in coverage.items():
        assert f"from {n} factor(s) known" in text(built["out"] / "councils" / f"{la}.html")


def test_a_factor_of_weight_zero_is_shown_as_not_scored_after_the_scored_ones(monkeypatch):
    for factor, weight in (("workforce instability", 0.75), ("repeat work", 0.2), ("placement stability", 0.0)):
        monkeypatch.setitem(report.standing.FACTOR_WEIGHTS, factor, weight)
    row = {"f_workforce_instability": 0.4, "f_placement_stability": 0.0, "f_repeat_work": -0.1,
           "standing": ["placement stability: 3+ placements 12.0%", "workforce instability: turnover 24.0%"]}
    factors = report._factors(row)
    assert [f["name"] for f in factors] == ["workforce instability", "repeat work", "placement stability"]
    assert [f["contribution"] for f in factors] == ["+0.40", "-0.10", "not scored"]
    assert factors[2]["detail"] == ["3+ placements 12.0%"]


def test_a_published_rate_the_score_reads_is_named_in_words_on_a_council_page(built):
    """Rates per 10,000 and spend are no indicators of the catalogue: their warnings still read plainly."""
    with duckdb.connect(str(built["catalogue"]), read_only=True) as con:
        builder = report.ReportBuilder(report.load(con, AS_OF))
    section = builder.indicator_section("301", "cin_rate", "concern")
    assert section["title"] == "Children in need per 10,000" and "pressure" in section["polarity_text"]
    assert section["funnel"] is None and "factors above" in section["funnel_caption"]


def test_spc_chart_draws_the_centre_and_limits_the_signal_was_judged_by(built):
    fig = figures(built["out"] / "councils" / "301.html")["spc-rereferral_12m"]
    judged = signal(built, "301", "rereferral_12m", "spc_point_beyond_limits")
    for name, column in (("centre (first 12 points)", "expected"), ("upper limit", "upper"), ("lower limit", "lower")):
        line = trace(fig, name)
        assert line["y"][-1] == pytest.approx(judged[column], rel=1e-6)
    points = trace(fig, "value")
    assert points["x"][-1] == AS_OF.isoformat() and points["y"][-1] == pytest.approx(judged["value"], rel=1e-6)


def test_special_causes_are_orange_for_a_concern_blue_for_an_improvement_and_common_causes_grey(built):
    concern = trace(figures(built["out"] / "councils" / "301.html")["spc-rereferral_12m"], "value")["marker"]["color"]
    better = trace(figures(built["out"] / "councils" / "304.html")["spc-assessment_45wd"], "value")["marker"]["color"]
    assert concern[-1] == report.CONCERN and better[-1] == report.IMPROVEMENT
    assert concern[0] == better[0] == report.COMMON      # the baseline year holds no special cause


def test_funnel_plot_highlights_the_council_among_every_council(built):
    fig = figures(built["out"] / "councils" / "302.html")["funnel-assessment_45wd"]
    me = trace(fig, built["names"]["302"])
    others = trace(fig, "other councils")
    assert len(me["x"]) == 1 and len(others["x"]) == len(SIZES) - 1
    judged = signal(built, "302", "assessment_45wd", report.ew.FUNNEL_METHOD)
    assert me["y"][0] == pytest.approx(judged["value"], rel=1e-6) and me["marker"]["color"] == report.CONCERN


def test_councils_outside_the_drawn_funnel_are_the_ones_early_warning_flagged_at_its_limits(built):
    s = built["signals"]
    funnels = s[s.method == report.ew.FUNNEL_METHOD]
    assert set(funnels.indicator) >= {"rereferral_12m", "assessment_45wd", "agency_rate_fte"}
    for indicator, flagged in funnels.groupby("indicator"):
        known = built["indicators"][known_dates(built["indicators"]) <= pd.Timestamp(AS_OF)]
        fun = report.funnel_for(known, indicator, "percent")
        outside = fun.units[fun.units.side != 0]
        assert set(outside.la_code) == set(flagged.la_code), indicator
        for row in flagged.itertuples():
            den = fun.units.loc[fun.units.la_code == row.la_code, "denominator"].to_numpy()
            lower, upper = fun.limits(den, report.FUNNEL_Z)
            assert (lower[0] * 100, upper[0] * 100) == (pytest.approx(row.lower), pytest.approx(row.upper))


def test_a_published_figure_is_drawn_only_once_it_was_published(built):
    fig = figures(built["out"] / "councils" / "305.html")["funnel-agency_rate_fte"]
    assert "at 30 September 2023" in fig["layout"]["title"]["text"]   # 2024's figure is public from May 2025


def test_counts_of_one_to_five_are_shown_as_less_than_six_in_tables_and_hover_text(built):
    path = built["out"] / "councils" / "303.html"
    cells = [c.text_content().strip() for c in tree(path).xpath("//table[@class='latest']//td[@class='num']")]
    hovers = [h for f in figures(path).values() for t in f["data"] for h in (t.get("text") or []) + (t.get("hovertext") or [])]
    counts = [c for c in cells if "%" not in c] + [n for h in hovers for n in re.findall(r"\(([^()]*?) of ", h)]
    assert "<6" in counts                                      # the tiny council has small counts...
    assert not [c for c in counts if c.replace(",", "").isdigit() and 1 <= int(c.replace(",", "")) <= 5]
    for page in [built["out"] / "index.html", path]:
        assert "counts from 1 to 5 are shown as “<6”" in text(page)


def test_values_from_small_denominators_are_marked(built):
    path = built["out"] / "councils" / "303.html"
    rows = tree(path).xpath("//section[@id='placement_stability_short']//table[@class='latest']/tbody/tr")
    for row in rows:
        value, denominator = row.xpath("td")[2].text_content(), row.xpath("td")[4].text_content()
        assert value.endswith("†") == (denominator == "<6" or int(denominator) < report.SMALL_BASE)
    points = trace(figures(path)["spc-placement_stability_short"], "value")["marker"]["symbol"]
    assert "circle-open" in points
    signals = [li.text_content() for li in tree(path).xpath("//ul[@class='signal-list']/li")]
    assert signals and all("†" in s for s in signals)        # the signals in words rest on that small base too


def test_report_at_an_earlier_month_end_shows_only_what_was_known_then(built, tmp_path):
    summary = report.write_report(built["catalogue"], tmp_path / "report", as_of="2024-06-30")
    assert summary["as_of"] == date(2024, 6, 30) and "30 June 2024" in text(tmp_path / "report" / "index.html")
    drawn = [x for page in (tmp_path / "report" / "councils").glob("*.html") for fig in figures(page).values()
             if fig["layout"]["title"]["text"].startswith("Own history") for x in fig["data"][0]["x"]]
    assert drawn and max(drawn) == "2024-06-30"


def test_pages_work_offline_with_plotly_written_once(built):
    out = built["out"]
    assert [p.relative_to(out).as_posix() for p in out.rglob("plotly*.js")] == ["assets/plotly.min.js"]
    from plotly.offline import get_plotlyjs
    assert (out / "assets" / "plotly.min.js").read_text(encoding="utf-8") == get_plotlyjs()
    for page in out.rglob("*.html"):
        doc = tree(page)
        for ref in doc.xpath("//script/@src | //link/@href | //a/@href"):
            assert "://" not in ref and (page.parent / ref.split("#")[0]).exists(), (page.name, ref)


def test_every_chart_is_a_valid_plotly_figure(built):
    import plotly.graph_objects as go

    pages = [built["out"] / "index.html", *(built["out"] / "councils").glob("*.html")]
    charts = [fig for page in pages for fig in figures(page).values()]
    assert len(charts) == built["summary"]["charts"] > 0
    for fig in charts:
        go.Figure(fig)                                      # raises on any property plotly does not know


def test_own_history_is_charted_on_the_monthly_series_where_an_indicator_has_one(built):
    ind = built["indicators"]
    monthly = ind[(ind.window == "rolling_12m") & (ind.indicator == "icpc_15wd")].assign(window="month")
    rate = ind[ind.indicator == "rereferral_12m"].assign(indicator="cla_rate_per_10k")
    windows = report.spc_windows(pd.concat([ind, monthly, rate]), {"cla_rate_per_10k": "rate_per_10k",
                                                                   "rereferral_12m": "percent"})
    assert windows["icpc_15wd"] == "month" and windows["rereferral_12m"] == "rolling_12m"
    assert "cla_rate_per_10k" not in windows       # a rate with no monthly series: early warning does not chart it


def test_cli_report_writes_into_the_repository_and_drops_pages_of_councils_gone(built, tmp_path, capsys):
    repo = tmp_path / "repository"
    repo.mkdir()
    shutil.copyfile(built["catalogue"], repo / "csreturns.duckdb")
    stale = repo / "report" / "councils" / "999.html"
    stale.parent.mkdir(parents=True)
    stale.write_text("a council no longer in the catalogue")
    assert main(["report", "--repo", str(repo)]) == 0
    assert f"{len(SIZES)} council page(s)" in capsys.readouterr().out
    assert (repo / "report" / "index.html").is_file() and not stale.exists()
    assert sorted(p.stem for p in (repo / "report" / "councils").glob("*.html")) == sorted(SIZES)


@pytest.mark.slow   # building a real catalogue, empty, takes several seconds
def test_an_empty_repository_gives_an_overview_saying_there_is_nothing_yet(tmp_path):
    from transforms.catalogue.build import publish
    from transforms.store.repository import Repository

    publish(Repository(tmp_path / "repository"))
    summary = report.report_for_repository(tmp_path / "repository")
    assert summary["councils"] == 0 and summary["as_of"] is None
    assert "no month end yet" in text(tmp_path / "repository" / "report" / "index.html")


def test_repository_refresh_writes_the_report_after_the_catalogue_and_announces_it():
    from transforms.orchestration.dags import REPORT_ASSET, repository_refresh_dag

    dag = repository_refresh_dag()
    task = dag.get_task("write_report")
    assert task.upstream_task_ids == {"build_catalogue"}
    assert [o.name for o in task.outlets] == [REPORT_ASSET.name]


# ---------------------------------------------------------------- in a real browser --------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ERROR_CONSOLE = {"error", "assert"}


class Browser:
    """Headless Chromium driven over the DevTools protocol, so console messages come with their level and
    uncaught exceptions and failed loads (a missing plotly.min.js) are seen, not guessed from a log."""

    def __init__(self, profile: Path):
        from websockets.sync.client import connect

        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--remote-debugging-port=0", "--window-size=1280,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert self.process.poll() is None and time.monotonic() < deadline, "chromium did not start"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        self.ws = connect(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"], max_size=None)
        self.ids, self.events = 0, []
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params) -> dict:
        self.ids += 1
        self.ws.send(json.dumps({"id": self.ids, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self.ids:
                assert "error" not in message, message
                return message.get("result", {})
            self.events.append(message)

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def open(self, url: str) -> dict:
        """Load a page; wait until every chart has drawn (or 30 s); the charts, the drawn ones and the errors."""
        self.events.clear()
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + 30
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events) and time.monotonic() < deadline:
            self.events.append(json.loads(self.ws.recv(timeout=30)))
        state = {}
        while time.monotonic() < deadline:
            state = self.evaluate("""(() => {
                const charts = [...document.querySelectorAll('.plotly-graph-div')];
                return {plotly: typeof Plotly !== 'undefined', charts: charts.length,
                        drawn: charts.filter(c => c.querySelector('svg.main-svg .scatterlayer .trace, svg.main-svg .barlayer .trace')).length,
                        points: document.querySelectorAll('.plotly-graph-div .scatterlayer .point, .plotly-graph-div .bars .point').length};
            })()""")
            if state["drawn"] == state["charts"] or not state["plotly"]:     # all drawn, or never will be
                break
            time.sleep(0.2)
        self.call("Runtime.evaluate", expression="0")     # flush events queued while drawing
        errors = []
        for e in self.events:
            kind, p = e.get("method"), e.get("params", {})
            if kind == "Runtime.exceptionThrown":
                errors.append(p["exceptionDetails"].get("exception", {}).get("description") or p["exceptionDetails"]["text"])
            elif kind == "Runtime.consoleAPICalled" and p["type"] in ERROR_CONSOLE:
                errors.append(" ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif kind == "Log.entryAdded" and p["entry"]["level"] == "error":
                errors.append(p["entry"]["text"] + " " + p["entry"].get("url", ""))
        return {**state, "errors": errors}

    def close(self):
        self.ws.close()
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture
def browser(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (make test installs Debian's chromium package with apt-get)")
    b = Browser(tmp_path / "chromium-profile")
    yield b
    b.close()


@pytest.mark.slow
def test_charts_render_in_headless_chromium_without_console_errors(built, browser, tmp_path):
    out = built["out"]
    for page, charts in (("index.html", 1), ("councils/301.html", 2), ("councils/303.html", 2),
                         ("councils/305.html", 1)):
        seen = browser.open((out / page).as_uri())
        assert seen["errors"] == [], (page, seen["errors"])
        assert seen["charts"] >= charts and seen["drawn"] == seen["charts"] and seen["points"] > 0, (page, seen)
    # ...and the check sees a broken page: the same council page without plotly.min.js beside it
    broken = tmp_path / "broken"
    shutil.copytree(out, broken, ignore=shutil.ignore_patterns("plotly.min.js"))
    seen = browser.open((broken / "councils" / "301.html").as_uri())
    assert seen["drawn"] == 0 and any("plotly.min.js" in e or "Plotly is not defined" in e for e in seen["errors"])
