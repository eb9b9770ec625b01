"""The shape of the package holds: wings by stage, imports one way, settings read in one place.

These read the source (ast), not the running program, so they hold for code no test happens to import.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGE = ROOT / "transforms"
BASE = {"schema", "settings", "sql", "workdays"}          # shared by every wing
WINGS = ("ingest", "store", "catalogue", "analytics", "report", "orchestration", "synthetic")
# What each part may import (besides itself). Data flows landing -> ingest -> store -> catalogue ->
# analytics -> report; orchestration and the CLI drive them; synthetic may use anything, nothing uses it.
ALLOWED = {
    "base": {"base"},
    "store": {"base"},
    "ingest": {"base", "store"},
    "analytics": {"base"},
    "catalogue": {"base", "store", "analytics", "ingest"},
    "report": {"base", "analytics"},
    "run": {"base", "ingest", "store", "catalogue"},
    "orchestration": {"base", "ingest", "store", "catalogue", "analytics", "report", "run"},
    "cli": {"base", "ingest", "store", "catalogue", "analytics", "report", "run", "orchestration"},
    "remote": {"orchestration"},            # the one-release re-export of the trigger's old path
    "synthetic": {"base", *WINGS, "run", "cli"},
}


def part_of(module: str) -> str:
    """``transforms.ingest.landing`` -> ``ingest``; ``transforms.schema`` -> ``base``."""
    parts = module.split(".")
    if len(parts) < 2:
        return "package"
    return "base" if parts[1] in BASE else parts[1]


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        out[name] = path
    return out


def imports_of(path: Path, module: str) -> set[str]:
    """Every transforms module imported anywhere in the file (at the top or inside a function)."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("transforms")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.startswith("transforms"):
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in ALL_MODULES}
    return found


ALL_MODULES = set(modules())


def wing_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules().items():
        src = part_of(module)
        for target in imports_of(path, module):
            dst = part_of(target)
            if dst not in (src, "package"):
                graph[src].add(dst)
    return graph


def test_every_wing_exists_and_says_what_it_does_and_may_import():
    for wing in WINGS:
        init = PACKAGE / wing / "__init__.py"
        assert init.is_file(), f"transforms/{wing}/ is not a package"
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert "May import" in doc, f"transforms/{wing}/__init__.py must say what the wing may import"


def test_no_module_sits_loose_beside_the_wings():
    loose = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert loose == BASE | {"run", "cli", "remote"}


def test_each_wing_imports_only_what_its_docstring_allows():
    wrong = []
    for module, path in modules().items():
        src = part_of(module)
        for target in sorted(imports_of(path, module)):
            dst = part_of(target)
            if dst not in (src, "package") and dst not in ALLOWED[src]:
                wrong.append(f"{module} imports {target} ({src} -> {dst})")
    assert wrong == []


def cycle_in(graph: dict[str, set[str]]) -> list[str] | None:
    """A path that comes back to where it started, if the directed graph has one (depth-first)."""
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*trail, node, nxt]
            if nxt not in state and (found := visit(nxt, [*trail, node])):
                return found
        state[node] = 2
        return None

    return next((found for node in sorted(graph) if node not in state and (found := visit(node, []))), None)


def test_the_import_graph_between_wings_has_no_cycle():
    assert cycle_in(wing_graph()) is None


def test_the_module_graph_has_no_cycle_even_through_imports_inside_functions():
    # a package and its own modules are not an edge (an __init__ may re-export them)
    graph = {m: {t for t in imports_of(p, m) if t in ALL_MODULES and t != m
                 and not t.startswith(m + ".") and not m.startswith(t + ".")} for m, p in modules().items()}
    assert cycle_in(graph) is None


def test_the_cycle_finder_finds_a_cycle():
    assert cycle_in({"ingest": {"store"}, "store": {"catalogue"}, "catalogue": {"ingest"}}) == \
        ["catalogue", "ingest", "store", "catalogue"]
    assert cycle_in({"ingest": {"store"}, "catalogue": {"store"}}) is None


def test_nothing_outside_synthetic_tests_and_bench_imports_the_generator():
    users = [m for m, p in modules().items() if part_of(m) != "synthetic"
             and any(part_of(t) == "synthetic" for t in imports_of(p, m))]
    for folder in ("dags",):
        for path in (ROOT / folder).glob("*.py"):
            if any(part_of(t) == "synthetic" for t in imports_of(path, folder)):
                users.append(str(path.relative_to(ROOT)))
    assert users == []


def _environment_reads(path: Path) -> list[str]:
    """Reads of the environment: os.getenv(...), os.environ.get(...), os.environ[...] (not writes, not a copy)."""
    reads = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            f = node.func
            if f.attr == "getenv" or (f.attr == "get" and ast.unparse(f.value) == "os.environ"):
                reads.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)[:60]}")
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and ast.unparse(node.value) == "os.environ":
            reads.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)[:60]}")
    return reads


def test_every_setting_is_read_through_settings():
    reads = [r for p in [*PACKAGE.rglob("*.py"), *(ROOT / "dags").glob("*.py")]
             if p != PACKAGE / "settings.py" for r in _environment_reads(p)]
    assert reads == []


def test_every_setting_is_documented_in_the_readme():
    from transforms import settings

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [name for name in settings.variables() if f"`{name}`" not in readme]
    assert missing == []
    assert all(text for text in settings.variables().values())


def test_settings_are_read_when_asked_not_at_import(monkeypatch):
    from transforms import settings

    monkeypatch.setenv("CSRETURNS_BATCH_SUBMISSIONS", "7")
    assert settings.current().batch_submissions == 7
    monkeypatch.setenv("CSRETURNS_BATCH_SUBMISSIONS", "0")
    with pytest.raises(settings.SettingsError, match="CSRETURNS_BATCH_SUBMISSIONS"):
        settings.current()
    monkeypatch.setenv("CSRETURNS_BATCH_SUBMISSIONS", "")
    assert settings.current().batch_submissions == 25     # empty is unset


def test_a_malformed_sources_variable_names_itself():
    from transforms import settings

    with pytest.raises(settings.SettingsError, match="CSRETURNS_SOURCES is not valid JSON"):
        settings.current({"CSRETURNS_SOURCES": "{kent: sftp}"}).sources_spec()
