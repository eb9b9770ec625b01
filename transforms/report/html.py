"""The early-warning report people read: static HTML pages built from the catalogue, fit to share.

``write_report(catalogue, out)`` writes ``index.html`` (councils ranked by ``council_risk``),
``councils/<la_code>.html`` (the council's live signals in words, then, per flagged indicator, an SPC chart of
its own history and a funnel plot of every council) and ``how-to-read.html``; ``assets/`` holds plotly.min.js,
written once, and a small style sheet, so the pages open from ``file://`` with no server and no network.

Why static: the readers (a director of children's services, an improvement adviser, a regional partner) open
a file from a shared folder; there is nothing to run. Why suppression: unlike the catalogue, this report is
meant to travel beyond the council, so counts from 1 to 5 are shown as "<6" and values from small bases are
marked. Why recompute the charts: the lines drawn come from ``early_warning``'s own chart functions (XmR,
p'-chart, funnel) on the same rows it could see at ``as_of`` (nothing known later), so a chart shows the
limits its signal was judged by.
"""
from __future__ import annotations

import logging
import math
import os
import re
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import plotly.io as pio
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from transforms.analytics import council_risk, standing
from transforms.analytics import early_warning as ew
from transforms.analytics.indicators import UNITS

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).with_name("templates")
SUPPRESS_BELOW = 6          # counts 1-5 are shown as "<6" (0 is shown: it discloses nobody)
SMALL_BASE = 20             # values from a denominator under 20 are marked as unreliable (ONS's rule for rates)
FUNNEL_MIN_UNITS = 10       # a funnel period needs this many councils (early_warning's min_units)
FUNNEL_Z = 3.09             # 99.8 % limits: the ones early_warning signals on
FUNNEL_Z_INNER = 1.96       # 95 %, drawn for context
CONCERN, IMPROVEMENT, COMMON, HIGHLIGHT = "#ed8b00", "#41b6e6", "#a6adb4", "#212b32"   # NHS Making Data Count
LIMIT_COLOUR = "#8a1538"
STRENGTH = {1: "●○○", 2: "●●○", 3: "●●●"}
METHOD_TEXT = {
    "spc_point_beyond_limits": "own history: beyond its limits",
    "spc_run": "own history: a run on one side of its usual level",
    "spc_trend": "own history: a trend",
    "spc_two_of_three": "own history: close to a limit",
    ew.FUNNEL_METHOD: "against England: outside the funnel",
    "published_level": "published figure: outside England's range",
    "published_change": "published figure: an unusual change",
}
WINDOW_TEXT = {"rolling_12m": "rolling 12 months", "dfe_year": "DfE year (April to March)",
               "month": "month", "rolling_3m": "rolling 3 months"}
POLARITY_TEXT = {"higher_is_worse": "Higher is worse.", "lower_is_worse": "Lower is worse.",
                 "context": "Context: no better direction; a sharp change either way is flagged.",
                 "demand": "Demand: no better direction, but higher and rising demand are read as pressure."}
PUBLISHED_UNITS = {"percent": "percent", "rate": "rate_per_10k", "ratio": "ratio", "pounds": None}
# no mode bar: hovering, dragging to zoom and double-clicking to reset are all a reader needs
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "displayModeBar": False}
CATALOGUE_FILE = "csreturns.duckdb"


# ---------------------------------------------------------------- small numbers ------------------------------

def count_text(n) -> str:
    """A count fit to share: 1-5 become "<6"; missing is a dash; fractional counts (FTE) keep one decimal."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "–"
    if 0 < n < SUPPRESS_BELOW:
        return f"<{SUPPRESS_BELOW}"
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:,.1f}"


def small_base(denominator) -> bool:
    return denominator is not None and not pd.isna(denominator) and denominator < SMALL_BASE


def value_text(v, unit: str | None, denominator=None) -> str:
    if v is None or pd.isna(v):
        return "–"
    if unit == "percent":
        text = f"{v:.1f}%"
    elif unit == "rate_per_10k":
        text = f"{v:.1f} per 10,000"
    else:
        text = f"{v:.1f}"
    return text + (" †" if small_base(denominator) else "")


def _counts(num, den) -> str:
    return f"{count_text(num)} of {count_text(den)}"


# ---------------------------------------------------------------- inputs -------------------------------------

@dataclass
class Inputs:
    as_of: date | None
    risk: pd.DataFrame        # council_risk at as_of
    signals: pd.DataFrame     # early_warning at as_of (concerns and improvements)
    indicators: pd.DataFrame  # indicators known by as_of
    catalogue: pd.DataFrame   # indicator_catalogue, indexed by indicator
    names: dict[str, str]


def load(con: duckdb.DuckDBPyConnection, as_of=None) -> Inputs:
    """What the report needs at ``as_of`` (default: the latest month end in ``council_risk``)."""
    if as_of is None:
        as_of = con.execute("SELECT max(as_of) FROM council_risk").fetchone()[0]
    as_of = pd.Timestamp(as_of).date() if as_of is not None else None
    risk = con.execute("SELECT * FROM council_risk WHERE as_of = ? ORDER BY rank, la_code", [as_of]).df()
    signals = con.execute("SELECT * FROM early_warning WHERE as_of = ? ORDER BY severity DESC, indicator, method",
                          [as_of]).df()
    ind = con.execute('SELECT * FROM indicators WHERE period_end <= ?', [as_of]).df() if as_of else \
        con.execute("SELECT * FROM indicators WHERE false").df()
    if not ind.empty:
        ind = ind[ew.known_dates(ind) <= pd.Timestamp(as_of)].reset_index(drop=True)
    cat = con.execute("SELECT * FROM indicator_catalogue").df().drop_duplicates("indicator").set_index("indicator")
    return Inputs(as_of, risk, signals, ind, cat, council_names(con))


def council_names(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Council names from the catalogue: the statistical-neighbour model's list, then as published
    (``published_statistics``, latest name wins). A council named in neither keeps its code."""
    names: dict[str, str] = {}
    for query in ("""SELECT la_code, arg_max(la_name, return_year) FROM statistical_neighbours
                     WHERE la_name IS NOT NULL GROUP BY 1""",
                  """SELECT old_la_code, arg_max(la_name, period_end) FROM published_statistics
                     WHERE geographic_level = 'Local authority' AND old_la_code IS NOT NULL AND la_name IS NOT NULL
                     GROUP BY 1"""):
        try:
            names.update(dict(con.execute(query).fetchall()))
        except duckdb.Error:   # a catalogue without that relation
            pass
    return names


# ---------------------------------------------------------------- SPC ----------------------------------------

def _direction(side: int, polarity: str) -> str:
    worse = -1 if polarity == "lower_is_worse" else 1
    return "concern" if polarity == "context" or side * worse > 0 else "improvement"


def proportion(unit: str | None, numerators, denominators) -> bool:
    """Whether an indicator is a proportion (funnels and p'-charts): a percentage, or no unit declared and
    no numerator above its denominator -- early warning's own test."""
    return unit == "percent" or (unit is None and not (np.asarray(numerators) > np.asarray(denominators)).any())


def spc_windows(ind: pd.DataFrame, units: dict[str, str]) -> dict[str, str]:
    """The series early warning charts each indicator on: the child-level monthly one where the indicator
    has it (independent points), otherwise, for a proportion, the rolling 12-month one; rates and ratios
    without a monthly series are not charted. Read from the windows present, never assumed: early warning
    moves from rolling to monthly windows as indicators gain them."""
    child = ind[ind["source"] == "child_level"]
    out = {}
    for indicator, rows in child.groupby("indicator"):
        windows = set(rows["window"])
        if "month" in windows:
            out[indicator] = "month"
        elif "rolling_12m" in windows and proportion(units.get(indicator), rows["numerator"], rows["denominator"]):
            out[indicator] = "rolling_12m"
    return out


class SpcSeries:
    """Each council's child-level series in its indicator's SPC window, by (la_code, indicator), in time
    order; grouped once, sliced only for the series a page draws."""

    def __init__(self, ind: pd.DataFrame, windows: dict[str, str]):
        rows = ind[(ind["source"] == "child_level") & (ind["window"] == ind["indicator"].map(windows))
                   & ind["value"].notna()]
        key = ["la_code", "indicator", "period_end"]
        rows = rows.sort_values(key).drop_duplicates(key)
        self.rows = rows.reset_index(drop=True)
        self.index = self.rows.groupby(["la_code", "indicator"], sort=False).indices

    def get(self, key: tuple[str, str]) -> pd.DataFrame | None:
        positions = self.index.get(key)
        return None if positions is None else self.rows.iloc[positions].reset_index(drop=True)


RULES = ("beyond_limits", "run", "trend", "two_of_three")


def spc_limits(series: pd.DataFrame, unit: str | None) -> dict[str, np.ndarray]:
    """Centre, limits and causal special-cause flags as early warning computes them for this series: a
    p'-chart for a proportion (limits per point, from its denominator; on overlapping rolling windows
    beyond-limits only), an XmR chart otherwise. ``value`` in the indicator's unit."""
    num, den = series["numerator"].to_numpy(float), series["denominator"].to_numpy(float)
    counted = np.isfinite(num) & np.isfinite(den) & (den > 0) & (num >= 0) & (num <= den)
    if proportion(unit, num, den) and counted.all():
        r = ew.pchart(num, den, overlapping=bool((series["window"] != "month").any()))
        r = {k: r[k].to_numpy() for k in r.columns}
        scale = UNITS.get(unit or "percent", 100.0)
        out = {k: np.asarray(r[k], dtype=float) * scale for k in ("centre", "lower", "upper")}
        out["value"] = num / den * scale
    else:
        r = ew.xmr(series["value"].reset_index(drop=True))
        r = {k: r[k].to_numpy() for k in r.columns}
        out = {k: np.asarray(r[k], dtype=float) for k in ("centre", "lower", "upper", "value")}
    out["trial"] = np.asarray(r["trial"], dtype=bool)
    for rule in RULES:
        out[rule], out[f"{rule}_since"] = np.asarray(r[rule]), np.asarray(r[f"{rule}_since"])
    return out


def spc_points(series: pd.DataFrame, unit: str | None, polarity: str) -> dict[str, np.ndarray]:
    """The chart's points, with each special cause painted back over the points that make it up (a run
    from its first point), as a chart drawn at ``as_of`` shows it; ``colour`` by what the cause means."""
    chart = spc_limits(series, unit)
    paint = np.zeros(len(series), dtype=int)
    for rule in RULES:
        fired, since = chart[rule], chart[f"{rule}_since"]
        for i in np.flatnonzero(fired != 0):
            paint[max(int(since[i]), 0):i + 1] = fired[i]
    chart["cause"] = paint
    chart["colour"] = np.array([COMMON if c == 0 else CONCERN if _direction(c, polarity) == "concern" else IMPROVEMENT
                                for c in paint], dtype=object)
    for col in ("period_end", "numerator", "denominator"):
        chart[col] = series[col].to_numpy()
    return chart


def spc_figure(series: pd.DataFrame, unit: str | None, polarity: str, window: str) -> dict:
    """The own-history chart as a Plotly figure: a plain dict (validated in the tests, not per page, where
    plotly's validation and template copying cost 90 ms a chart)."""
    chart = spc_points(series, unit, polarity)
    x = [pd.Timestamp(d).strftime("%Y-%m-%d") for d in chart["period_end"]]
    y = _floats(chart["value"])
    hover = [f"{period_text(window, d)}: {value_text(v, unit, den)} ({_counts(num, den)})"
             + ("" if c == 0 else f"<br>special cause ({_direction(c, polarity)})")
             + ("<br>trial limits (fewer than 12 points)" if t else "")
             for d, v, num, den, c, t in zip(chart["period_end"], chart["value"], chart["numerator"],
                                            chart["denominator"], chart["cause"], chart["trial"])]
    colours = chart["colour"].tolist()
    data = [dict(type="scatter", x=x, y=y, mode="lines", line=dict(color=COMMON, width=1.5), hoverinfo="skip",
                 showlegend=False)]
    if not chart["trial"][-1]:
        for col, name, dash, colour in (("centre", "centre (first 12 points)", "solid", HIGHLIGHT),
                                        ("upper", "upper limit", "dash", LIMIT_COLOUR),
                                        ("lower", "lower limit", "dash", LIMIT_COLOUR)):
            data.append(dict(type="scatter", x=x, y=_floats(chart[col]), mode="lines", name=name,
                             line=dict(color=colour, dash=dash, width=1.2), hoverinfo="skip"))
    data.append(dict(type="scatter", x=x, y=y, mode="markers", name="value", text=hover,
                     hovertemplate="%{text}<extra></extra>",
                     marker=dict(color=colours, size=[9 if c else 6 for c in chart["cause"]],
                                 symbol=["circle-open" if small_base(d) else "circle" for d in chart["denominator"]],
                                 line=dict(width=1.5, color=colours))))
    return dict(data=data, layout=_layout(f"Own history: {window_text(window)}", _unit_label(unit)))


def _floats(values) -> list:
    """JSON-ready numbers (6 decimals keep the pages small); missing values become gaps (null)."""
    v = (values.to_numpy(dtype=float, na_value=np.nan) if hasattr(values, "to_numpy")
         else np.asarray(values, dtype=float))
    return [None if math.isnan(x) else x for x in np.round(v, 6).tolist()]


def _layout(title: str, y_title: str, height: int = 360, **extra) -> dict:
    axis = dict(gridcolor="#e8edee", zerolinecolor="#d8dde0", linecolor="#aeb7bd")
    layout = dict(title=dict(text=title, font=dict(size=14), x=0.02, xanchor="left"), height=height,
                  hovermode="closest", margin=dict(l=55, r=20, t=45, b=50), paper_bgcolor="white", plot_bgcolor="white",
                  font=dict(family="system-ui, Arial, sans-serif", size=12, color="#212b32"),
                  xaxis=dict(axis), yaxis=dict(axis, title=dict(text=y_title)),
                  legend=dict(orientation="h", y=-0.3))
    for key, value in extra.items():
        layout[key] = {**layout[key], **value} if isinstance(layout.get(key), dict) else value
    return layout


def window_text(window: str) -> str:
    return WINDOW_TEXT.get(window, window.replace("_", " "))


def period_text(window: str, period) -> str:
    """The period a figure covers, in words: ``"rolling 12 months to Mar 2025"``; a figure taken on a census
    day rather than over a year (the workforce census, ``period_end`` 30 September) ``"at 30 September 2024"``."""
    day = pd.Timestamp(period)
    if (day.month, day.day) == (9, 30):
        return f"at 30 September {day.year}"
    return f"{window_text(window)} to {day:%b %Y}"


def comparison_label(fun: "Funnel") -> str:
    """What the funnel's centre line is: the pooled proportion of the councils plotted, so it is named by
    them (``"the 40 councils in this repository"``), never "England": England's published figure is another
    number, which this line only approaches when every council is present."""
    return f"the {len(fun.units)} councils in this repository"


def _unit_label(unit: str | None) -> str:
    return {"percent": "%", "rate_per_10k": "per 10,000", "ratio": ""}.get(unit or "", "")


# ---------------------------------------------------------------- funnels ------------------------------------

@dataclass
class Funnel:
    """One indicator's funnel at ``as_of``: every council on the latest period holding enough councils."""
    indicator: str
    window: str
    source: str
    period: date
    units: pd.DataFrame       # la_code, numerator, denominator + ew.funnel columns (p, lower, upper, side, ...)
    p0: float
    tau2: float
    drawn: dict | None = None        # what every council page shares, prepared once by funnel_figure

    def limits(self, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
        """Funnel limits at denominators ``n``: at each council's own denominator, the limits it was judged by."""
        return ew.funnel_limits(self.p0, n, self.tau2, z)


def funnel_for(ind: pd.DataFrame, indicator: str, unit: str | None) -> Funnel | None:
    """The funnel early warning judges ``indicator`` on: proportions only; of the streams it reads
    (``early_warning.STREAMS``), the one with the latest period holding ``FUNNEL_MIN_UNITS`` councils."""
    rows = ind[ind["indicator"] == indicator]
    num, den = rows["numerator"].astype(float), rows["denominator"].astype(float)
    if unit not in ("percent", None) or (unit is None and (num > den).any()):
        return None
    rows = rows[np.isfinite(num) & np.isfinite(den) & (den > 0) & (num >= 0) & (num <= den)].copy()
    rows["stream"] = [ew.STREAMS.index(k) if k in ew.STREAMS else -1 for k in zip(rows["window"], rows["source"])]
    rows = rows[rows["stream"] >= 0]
    size = rows.groupby(["stream", "period_end"])["la_code"].transform("nunique")
    rows = rows[size >= FUNNEL_MIN_UNITS]
    if rows.empty:
        return None
    latest = rows.groupby("stream")["period_end"].max().reset_index().sort_values(
        ["period_end", "stream"], ascending=[False, True]).iloc[0]
    units = rows[(rows["stream"] == latest["stream"]) & (rows["period_end"] == latest["period_end"])]
    units = units.drop_duplicates("la_code").sort_values("la_code").reset_index(drop=True)
    f = ew.funnel(units["numerator"], units["denominator"], z=FUNNEL_Z)
    units = pd.concat([units[["la_code", "numerator", "denominator"]], f], axis=1)
    window, source = ew.STREAMS[int(latest["stream"])]
    return Funnel(indicator, window, source, pd.Timestamp(latest["period_end"]).date(), units,
                  float(f["p0"].iat[0]), float(f["tau2"].iat[0]))


def _funnel_drawn(fun: Funnel, unit: str | None, polarity: str, names: dict[str, str]) -> dict:
    """The parts of a funnel plot every council page shares: limits, England line, points and hover text."""
    scale = UNITS.get(unit or "percent", 100.0)
    u = fun.units
    n = np.geomspace(max(1.0, u["denominator"].min() * 0.8), u["denominator"].max() * 1.15, 120)
    lines = []
    for z, dash, name in ((FUNNEL_Z, "dash", "99.8% limits"), (FUNNEL_Z_INNER, "dot", "95% limits")):
        for lim, show in zip(fun.limits(n, z)[::-1], (True, False)):
            lines.append(dict(type="scatter", x=_floats(n), y=_floats(lim * scale), mode="lines", name=name,
                              legendgroup=name, showlegend=show, hoverinfo="skip",
                              line=dict(color=LIMIT_COLOUR if z == FUNNEL_Z else "#768692", dash=dash, width=1.2)))
    lines.append(dict(type="scatter", x=_floats([n[0], n[-1]]), y=_floats([fun.p0 * scale] * 2), mode="lines",
                      name=f"average of {comparison_label(fun)}", line=dict(color=HIGHLIGHT, width=1.2),
                      hoverinfo="skip"))
    hover = []
    for la, p, num, den, side in zip(u["la_code"], u["p"], u["numerator"], u["denominator"], u["side"]):
        where = "" if side == 0 else f"<br>outside the 99.8% limits ({_direction(side, polarity)})"
        hover.append(f"{names.get(la, la)} ({la}): {value_text(p * scale, unit, den)} ({_counts(num, den)}){where}")
    return dict(lines=lines, la=u["la_code"].tolist(), x=_floats(u["denominator"]), y=_floats(u["p"] * scale),
                side=u["side"].tolist(), hover=hover,
                symbol=["circle-open" if small_base(d) else "circle" for d in u["denominator"]],
                title=f"Against {comparison_label(fun)}: {period_text(fun.window, fun.period)}")


def funnel_figure(fun: Funnel, la_code: str, unit: str | None, polarity: str, names: dict[str, str]) -> dict:
    if fun.drawn is None:
        fun.drawn = _funnel_drawn(fun, unit, polarity, names)
    d = fun.drawn
    others = [i for i, la in enumerate(d["la"]) if la != la_code]
    data = list(d["lines"])
    data.append(dict(type="scatter", x=[d["x"][i] for i in others], y=[d["y"][i] for i in others], mode="markers",
                     name="other councils", text=[d["hover"][i] for i in others],
                     hovertemplate="%{text}<extra></extra>",
                     marker=dict(color=COMMON, size=6, symbol=[d["symbol"][i] for i in others])))
    if la_code in d["la"]:
        i = d["la"].index(la_code)
        name = names.get(la_code, la_code)
        side = d["side"][i]
        colour = HIGHLIGHT if side == 0 else CONCERN if _direction(side, polarity) == "concern" else IMPROVEMENT
        data.append(dict(type="scatter", x=[d["x"][i]], y=[d["y"][i]], mode="markers+text", name=name, text=[name],
                         textposition="top center", cliponaxis=False, hovertext=[d["hover"][i]],
                         hovertemplate="%{hovertext}<extra></extra>",
                         marker=dict(color=colour, size=14, symbol=d["symbol"][i],
                                     line=dict(color=HIGHLIGHT, width=1.5))))
    x_title = dict(text="cases the figure is based on (denominator)", standoff=4)
    return dict(data=data, layout=_layout(d["title"], _unit_label(unit), xaxis=dict(title=x_title)))


# ---------------------------------------------------------------- overview -----------------------------------

def overview_figure(ranked: list[dict], top: int = 30) -> dict | None:
    scored = [c for c in ranked if c["score"]][:top][::-1]     # rank 1 at the top
    if not scored:
        return None
    data = [dict(type="bar", orientation="h", x=[c["score"] for c in scored],
                 y=[f"{c['name']} ({c['la_code']})" for c in scored], marker=dict(color=CONCERN),
                 text=[f"rank {c['rank']}, {c['concerns']} indicator(s) of concern" for c in scored],
                 textposition="none", hovertemplate="%{y}: score %{x}<br>%{text}<extra></extra>")]
    title = (f"The {len(scored)} councils with the highest risk scores" if len(scored) > 1
             else "The council with a risk score")
    return dict(data=data, layout=_layout(title, "", height=120 + 22 * len(scored),
                                          margin=dict(l=230), xaxis=dict(title=dict(text="risk score")),
                                          yaxis=dict(automargin=True)))


def _html(fig: dict | None, div_id: str) -> Markup | None:
    if fig is None:
        return None
    return Markup(pio.to_html(fig, validate=False, include_plotlyjs=False, full_html=False, div_id=div_id,
                              config=PLOTLY_CONFIG, default_height=f"{fig['layout']['height']}px"))


# ---------------------------------------------------------------- pages --------------------------------------

def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                       trim_blocks=True, lstrip_blocks=True)


def _write(path: Path, content: str | bytes) -> None:
    """Atomic: a reader opening the report while it is rewritten sees the old page or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(content, bytes):
        tmp.write_bytes(content)
    else:
        tmp.write_text(content, encoding="utf-8")
    os.replace(tmp, path)


def _assets(out: Path) -> None:
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs().encode("utf-8")
    target = out / "assets" / "plotly.min.js"
    if not target.exists() or target.read_bytes() != js:
        _write(target, js)
    _write(out / "assets" / "report.css", (TEMPLATES / "report.css").read_bytes())


def _score_text(score) -> str:
    return "–" if score is None or pd.isna(score) else f"{score:g}"


def _factors(row: dict) -> list[dict]:
    """A council's risk factors at the report date, largest contribution first, each with its figures in
    words (level, place among its statistical neighbours, England, change: ``council_risk.standing``); a
    factor of weight 0 (``standing.FACTOR_WEIGHTS``) is shown last as "not scored"."""
    lines = list(row.get("standing")) if row.get("standing") is not None else []
    out = []
    for factor in standing.FACTORS:
        value = row.get(council_risk.factor_column(factor))
        if value is None or pd.isna(value):
            continue
        scored = standing.FACTOR_WEIGHTS.get(factor, 1.0) > 0
        out.append(dict(name=factor, contribution=f"{value:+.2f}" if scored else "not scored",
                        order=-float(value) if scored else np.inf,
                        detail=[x.split(": ", 1)[1] for x in lines if x.startswith(f"{factor}: ")]))
    return sorted(out, key=lambda f: f["order"])


def _ranked(data: Inputs) -> list[dict]:
    concerns = data.signals[data.signals["direction"] == "concern"]
    per_council = concerns.groupby("la_code")["indicator"].nunique().to_dict()
    ranked = [dict(la_code=r.la_code, name=data.names.get(r.la_code, f"Council {r.la_code}"),
                   score=float(r.score), score_text=_score_text(round(r.score, 2)), rank=int(r.rank),
                   coverage=int(r.coverage) if "coverage" in data.risk and pd.notna(r.coverage) else None,
                   concerns=per_council.get(r.la_code, 0),
                   reasons=list(r.top_reasons) if r.top_reasons is not None else [],
                   factors=_factors(r._asdict()))
              for r in data.risk.itertuples()]
    # councils with signals but no risk row (published figures only: council_risk ranks child-level councils)
    known = {c["la_code"] for c in ranked}
    for la in sorted(set(data.signals["la_code"]) - known):
        ranked.append(dict(la_code=la, name=data.names.get(la, f"Council {la}"), score=None, score_text="–",
                           rank="–", concerns=per_council.get(la, 0), factors=[],
                           reasons=concerns.loc[concerns["la_code"] == la, "explanation"].head(3).tolist()))
    return ranked


SINCE = re.compile(r"since \d{4}-\d{2}")
LABELS = {1: "watch", 2: "warning", 3: "warning"}


def _signal_rows(rows: pd.DataFrame, small: set[str] = frozenset()) -> list[dict]:
    """Signals in words, one per indicator (strongest first): its strongest signal's sentence with one "since",
    the earliest of the indicator's live signals, and every method that signals it; ``label`` "watch" for
    strength 1, "warning" above; ``small``: indicators whose latest figure rests on a small base (marked †)."""
    out = []
    if rows.empty:
        return out
    ordered = rows.sort_values(["severity", "indicator", "method"], ascending=[False, True, True])
    for indicator, group in ordered.groupby("indicator", sort=False):
        top = group.iloc[0]
        explanation = str(top["explanation"])
        if "since" in group and group["since"].notna().any():
            explanation = SINCE.sub(f"since {pd.Timestamp(group['since'].min()):%Y-%m}", explanation)
        severity = int(top["severity"])
        out.append(dict(severity=severity, strength=STRENGTH.get(severity, ""), label=LABELS.get(severity, "warning"),
                        explanation=explanation + (" †" if indicator in small else ""),
                        method_text="; ".join(METHOD_TEXT.get(m, m) for m in group["method"])))
    return out


def latest_rows(ind: pd.DataFrame, units: dict) -> dict[tuple[str, str], list[dict]]:
    """Each council's latest figure per indicator, window and source, counts suppressed, by (la_code, indicator)."""
    if ind.empty:
        return {}
    last = ind.sort_values("period_end").groupby(["la_code", "indicator", "window", "source"], sort=False).tail(1)
    last = last.sort_values(["la_code", "indicator", "source", "window"])
    out: dict[tuple[str, str], list[dict]] = {}
    for r in last.itertuples():
        unit = units.get(r.indicator)
        out.setdefault((r.la_code, r.indicator), []).append(dict(
            period=f"{pd.Timestamp(r.period_end):%b %Y}",
            window=(period_text(r.window, r.period_end) if pd.Timestamp(r.period_end).month == 9
                    else window_text(r.window)) + (" (published)" if r.source == "published" else ""),
            value=value_text(r.value, unit, r.denominator), numerator=count_text(r.numerator),
            denominator=count_text(r.denominator), small=small_base(r.denominator)))
    return out


TREND_YEARS = 5             # published years shown in a council's trend table


def trends(ind: pd.DataFrame, titles: dict, units: dict) -> dict[str, dict]:
    """Per council, its published figures over the last ``TREND_YEARS`` years known at the report date:
    ``{la_code: {"years": [...], "rows": [{"title", "values": [...]}]}}`` (a year without a figure: "–";
    small bases are not suppressed here: they are rates and percentages, not counts)."""
    pub = ind[ind["source"].eq("published") & ind["window"].eq("dfe_year")] if not ind.empty else ind
    if pub.empty:
        return {}
    pub = pub.assign(year=pd.to_datetime(pub["period_end"]).dt.year)
    years = sorted(pub["year"].unique())[-TREND_YEARS:]
    pub = pub[pub["year"].isin(years)]
    out: dict[str, dict] = {}
    for (la, indicator), g in pub.groupby(["la_code", "indicator"], sort=True):
        by_year = dict(zip(g["year"], g["value"]))
        values = [value_text(by_year[y], units.get(indicator)) if y in by_year and pd.notna(by_year[y]) else "–"
                  for y in years]
        out.setdefault(la, {"years": [str(y) for y in years], "rows": []})["rows"].append(
            dict(title=titles.get(indicator) or indicator, values=values))
    return out


class ReportBuilder:
    """Holds what every page shares (the inputs, per-indicator funnels, the SPC series) while pages are written."""

    def __init__(self, data: Inputs):
        self.data = data
        units = data.catalogue["unit"].dropna().to_dict() if "unit" in data.catalogue else {}
        self.windows = spc_windows(data.indicators, units) if not data.indicators.empty else {}
        self.series = SpcSeries(data.indicators, self.windows) if self.windows else {}
        self.signals = dict(tuple(data.signals.groupby("la_code"))) if not data.signals.empty else {}
        self.latest = latest_rows(data.indicators, units)
        titles = data.catalogue["title"].dropna().to_dict() if "title" in data.catalogue else {}
        self.trends = trends(data.indicators, titles, units)
        self._funnels: dict[str, Funnel | None] = {}
        self.weights = council_risk.weights().set_index("indicator")["weight"].to_dict()
        self.charts = 0

    def meta(self, indicator: str) -> dict:
        cat = self.data.catalogue
        metric = {m.id: m for m in standing.METRICS}.get(indicator)
        if indicator not in cat.index and metric is not None:
            # a published figure the score reads that is not an indicator (rates per 10,000, spend)
            return dict(title=metric.title[0].upper() + metric.title[1:], unit=PUBLISHED_UNITS.get(metric.unit),
                        polarity="demand" if metric.polarity == "demand" else metric.polarity,
                        definition="A published figure, one a year, judged by its level against England and the "
                                   "council's statistical neighbours and by its change over two years.")
        row = cat.loc[indicator].to_dict() if indicator in cat.index else {}

        def get(key, default):
            v = row.get(key)
            return default if v is None or (isinstance(v, float) and math.isnan(v)) else v

        return dict(title=get("title", indicator), unit=get("unit", None), polarity=get("polarity", "context"),
                    definition=get("definition", ""))

    def funnel(self, indicator: str) -> Funnel | None:
        if indicator not in self._funnels:
            self._funnels[indicator] = funnel_for(self.data.indicators, indicator, self.meta(indicator)["unit"])
        return self._funnels[indicator]

    def indicator_section(self, la_code: str, indicator: str, direction: str) -> dict:
        m = self.meta(indicator)
        series = self.series.get((la_code, indicator))
        spc = spc_caption = None
        if series is not None and len(series) >= 2:
            window = self.windows[indicator]
            spc = _html(spc_figure(series, m["unit"], m["polarity"], window), f"spc-{indicator}")
            self.charts += 1
            last = pd.Timestamp(series["period_end"].iat[-1])
            covered = period_text(window, last)
            spc_caption = (f"{covered[0].upper()}{covered[1:]}. "
                           + ("Fewer than 12 points: no limits yet." if len(series) < 12 else
                              "Orange: special cause, concern; blue: improvement; hollow: small base."))
        else:
            spc_caption = ("No own-history series for this council and indicator: early warning charts monthly "
                           "series, and rolling 12-month ones for percentages only.")
        fun = self.funnel(indicator)
        funnel = None
        if fun is not None and (fun.units["la_code"] == la_code).any():
            funnel = _html(funnel_figure(fun, la_code, m["unit"], m["polarity"], self.data.names),
                           f"funnel-{indicator}")
            self.charts += 1
            funnel_caption = (f"{len(fun.units)} councils, {period_text(fun.window, fun.period)}"
                              f"{' (published)' if fun.source == 'published' else ''}; the line is the average of "
                              f"{comparison_label(fun)}, "
                              f"{value_text(fun.p0 * UNITS.get(m['unit'] or 'percent', 100.0), m['unit'])}.")
        elif fun is not None:
            funnel_caption = f"No figure for this council in the funnel's period ({fun.period:%b %Y}): no funnel plot."
        elif indicator not in self.data.catalogue.index:
            funnel_caption = "Published figure: its place among England and its neighbours is in the factors above."
        elif m["unit"] not in ("percent", None):
            funnel_caption = "Not a percentage: no funnel plot (own history only)."
        else:
            funnel_caption = f"Fewer than {FUNNEL_MIN_UNITS} councils with this figure for the period: no funnel plot."
        latest = self.latest.get((la_code, indicator), [])
        return dict(indicator=indicator, title=m["title"], direction=direction, definition=m["definition"],
                    polarity_text=POLARITY_TEXT.get(m["polarity"], ""), spc=spc, spc_caption=spc_caption,
                    funnel=funnel, funnel_caption=funnel_caption, latest=latest)

    def council_context(self, council: dict) -> dict:
        sig = self.signals.get(council["la_code"])
        trend = self.trends.get(council["la_code"])
        if sig is None:
            return dict(council=council, concerns=[], improvements=[], indicators=[], trend=trend)
        concerns, improvements = sig[sig["direction"] == "concern"], sig[sig["direction"] != "concern"]
        flagged = (sig.assign(is_concern=sig["direction"].eq("concern"),
                              weight=sig["indicator"].map(self.weights).fillna(council_risk.DEFAULT_WEIGHT))
                   .sort_values(["is_concern", "severity", "weight", "indicator"],
                                ascending=[False, False, False, True])
                   .drop_duplicates("indicator"))
        sections = [self.indicator_section(council["la_code"], r.indicator,
                                           "concern" if r.is_concern else "improvement") for r in flagged.itertuples()]
        small = {i for i in set(sig["indicator"])
                 if any(r["small"] for r in self.latest.get((council["la_code"], i), []))}
        return dict(council=council, concerns=_signal_rows(concerns, small),
                    improvements=_signal_rows(improvements, small), indicators=sections, trend=trend)


def write_report(catalogue: Path, out: Path, as_of=None) -> dict:
    """Write the report for ``as_of`` (default: the latest month end) from a catalogue file, read-only.
    Returns what was written: ``out``, ``as_of``, ``councils``, ``charts``, ``seconds``."""
    started = time.perf_counter()
    catalogue, out = Path(catalogue), Path(out)
    if not catalogue.exists():
        raise FileNotFoundError(f"no catalogue at {catalogue}: run `csreturns refresh --repo REPO` first")
    with duckdb.connect(str(catalogue), read_only=True) as con:
        data = load(con, as_of)
    builder = ReportBuilder(data)
    env = _environment()
    ranked = _ranked(data)
    common = dict(as_of_text=f"{data.as_of:%d %B %Y}" if data.as_of else "no month end yet",
                  built=datetime.now(timezone.utc).strftime("%d %B %Y %H:%M UTC"), small_base=SMALL_BASE,
                  n_councils=len(data.risk))
    _assets(out)
    chart = _html(overview_figure(ranked), "overview")
    _write(out / "index.html", env.get_template("index.html").render(
        root="", charts=chart is not None, chart=chart, councils=ranked,
        with_concerns=sum(1 for c in ranked if c["concerns"]), **common))
    _write(out / "how-to-read.html", env.get_template("how-to-read.html").render(root="", charts=False, **common))
    page = env.get_template("council.html")
    written = set()
    for council in ranked:
        path = out / "councils" / f"{council['la_code']}.html"
        _write(path, page.render(root="../", charts=True, **builder.council_context(council), **common))
        written.add(path.name)
    for stale in (out / "councils").glob("*.html") if (out / "councils").exists() else []:
        if stale.name not in written:     # a council no longer in the catalogue
            stale.unlink()
    summary = dict(out=str(out), as_of=data.as_of, councils=len(ranked),
                   charts=builder.charts + (chart is not None), seconds=round(time.perf_counter() - started, 2))
    log.info("report: %s", summary)
    return summary


def report_for_repository(repo: Path | str, out: Path | str | None = None, as_of=None) -> dict:
    """The report of a repository's catalogue, by default into ``REPO/report``."""
    repo = Path(repo)
    return write_report(repo / CATALOGUE_FILE, Path(out) if out else repo / "report", as_of)
