"""The Great Expectations internals csreturns relies on (``transforms/ingest/expectations.py``, "Great Expectations
internals"): written for one GX version, and a run with them must give exactly what plain GX gives.

If GX is upgraded, the first test fails on purpose: re-read each numbered piece of that note against the new
GX, then move ``GX_VERSION``. Until then the validator runs plain GX (slower, same results).
"""
from __future__ import annotations

import inspect
import json

import pyarrow as pa
import pytest

from transforms.ingest import expectations as ex


def test_the_installed_gx_is_the_version_the_internals_were_written_for():
    import great_expectations as gx

    assert gx.__version__ == ex.GX_VERSION, (
        f"GX {gx.__version__} is installed, the internals in transforms/ingest/expectations.py were written for "
        f"{ex.GX_VERSION}: re-check each of them against it (this file says how), then move GX_VERSION")


def test_the_gx_internals_relied_on_still_have_their_shape():
    from great_expectations.core.id_dict import IDDict
    from great_expectations.execution_engine import SqlAlchemyExecutionEngine
    from great_expectations.expectations.expectation import Expectation
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    from great_expectations.expectations.metrics.table_metrics import table_column_types
    from great_expectations.validator.validation_graph import ValidationGraph

    assert isinstance(inspect.getattr_static(Expectation, "configuration"), property)
    assert list(inspect.signature(ExpectationConfiguration.to_domain_obj).parameters) == ["self"]
    assert list(inspect.signature(IDDict.to_id).parameters) == ["self", "id_keys", "id_ignore_keys"]
    assert list(inspect.signature(ValidationGraph.resolve).parameters) == [
        "self", "runtime_configuration", "min_graph_edges_pbar_enable", "show_progress_bars"]
    assert "metrics" in inspect.signature(ValidationGraph._resolve).parameters
    assert "get_inspector" in vars(SqlAlchemyExecutionEngine)
    assert "_get_sqlalchemy_column_metadata" in vars(table_column_types)
    from transforms.ingest.validate import duckdb_validator

    validator = duckdb_validator()
    assert validator.speedups, "install_run_speedups declined: the installed GX is not the version written for"
    assert isinstance(validator.engine._metric_cache, dict)
    assert "_inspector" in vars(validator.engine)
    from great_expectations.execution_engine import sqlalchemy_execution_engine as sae

    assert "duckdb" in sae._PERSISTED_CONNECTION_DIALECTS


def _batch() -> pa.Table:
    """Ten rows that fail each kind of expectation csreturns generates at least once (DECOM's dates are all
    valid: a column that passes beside columns that fail)."""
    return pa.table({
        "CHILD": ["1", "2", "3", "3", None, "6", "7", "8", "9", "10000000000"],
        "SEX": ["1", "2", "1", "3", "2", "1", None, "m", "2", "1"],
        "DOB": ["01/02/2010", "31/02/2010", "2010-01-01", "01/01/2011", None, "15/06/2012", "01/01/2013", "x",
                "01/01/2014", "01/01/2015"],
        "UPN": ["A123456789012", "B12345678901X", "A123456789012", None, "bad", "A123456789013", "A12345678901",
                "A123456789014", "A123456789015", "A123456789016"],
        "HOURS": ["1", "2.5", "-1", "3", "", "40", "nan", "7.0", "x", "100"],
        "PUBLISHED": ["1", "c", "z", "2,000", "x", "101", "50", "", "-3", "7"],
        "DECOM": ["01/04/2024", "01/04/2024", "02/04/2024", "02/04/2024", "03/04/2024", "03/04/2024", None,
                  "04/04/2024", "05/04/2024", "05/04/2024"],
        "_file": pa.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1], pa.int64()),
    })


def _suite():
    import great_expectations as gx
    import great_expectations.expectations as gxe

    return gx.ExpectationSuite(name="internals.check", expectations=[
        gxe.ExpectColumnToExist(column="CHILD", meta={"rule": "structure"}),
        gxe.ExpectColumnToExist(column="MISSING", meta={"rule": "structure"}),
        gxe.ExpectColumnValuesToNotBeNull(column="CHILD"),
        gxe.ExpectColumnValuesToNotBeNull(column="MISSING"),       # GX reports the exception in the result
        ex.ExpectColumnValuesToBeDates(column="MISSING", date_format="%d/%m/%Y"),
        gxe.ExpectColumnValuesToNotBeNull(column="SEX"),
        gxe.ExpectColumnValuesToBeInSet(column="SEX", value_set=["1", "2"]),
        gxe.ExpectColumnValueLengthsToBeBetween(column="CHILD", max_value=10),
        gxe.ExpectColumnValuesToMatchRegex(column="UPN", regex=r"^[A-Z]\d{12}$"),
        gxe.ExpectColumnValuesToBeUnique(column="UPN"),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["CHILD", "_file"]),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["CHILD", "DECOM", "_file"]),
        ex.ExpectColumnValuesToBeDates(column="DOB", date_format="%d/%m/%Y"),
        ex.ExpectColumnValuesToBeDates(column="DECOM", date_format="%d/%m/%Y"),
        ex.ExpectColumnValuesToBeWholeNumbers(column="HOURS", min_value=0, max_value=50),
        ex.ExpectColumnValuesToBeNumbersOrSymbols(column="PUBLISHED", symbols=["c", "z"]),
        ex.ExpectColumnValuesToBeNumbersOrSymbolsWithin(column="PUBLISHED", symbols=["c"], min_value=0,
                                                        max_value=100),
    ])


def _run(validator, fast: bool):
    validator.speedups = fast
    try:
        result = validator.validate(_batch(), _suite())
    finally:
        validator.speedups = True
    kept = result.to_json_dict()
    kept.pop("meta")        # the batch's load time
    return kept


def test_a_run_with_the_internals_gives_what_plain_gx_gives():
    from transforms.ingest.validate import duckdb_validator

    validator = duckdb_validator()
    plain, fast = _run(validator, fast=False), _run(validator, fast=True)
    assert json.dumps(fast, sort_keys=True, default=str) == json.dumps(plain, sort_keys=True, default=str)
    passed = [(r["expectation_config"]["type"], r["expectation_config"]["kwargs"].get("column"))
              for r in fast["results"] if r["success"]]
    # every other expectation fails: each kind is exercised in both passes
    assert sorted(passed) == [("expect_column_to_exist", "CHILD"), ("expect_column_values_to_be_dates", "DECOM")]
    listed = {len(r["result"].get("unexpected_index_list") or []) for r in fast["results"] if not r["success"]}
    assert max(listed) > 1                     # failing rows come back by id, as in plain GX


def test_the_staged_inspector_describes_the_batch_as_gx_reflection_does():
    from great_expectations.expectations.metrics.table_metrics.table_column_types import (
        _get_sqlalchemy_column_metadata,
    )

    from transforms.ingest.validate import duckdb_validator

    validator = duckdb_validator()
    validator.stage(_batch())
    engine = validator.engine
    batch = validator.batch_definition.get_batch()
    data = engine.batch_manager.batch_data_cache[batch.id]
    staged = _get_sqlalchemy_column_metadata(engine, data)
    ex.use_staged_inspector(engine, None)
    engine._inspector = None
    try:
        reflected = _get_sqlalchemy_column_metadata(engine, data)
    finally:
        validator.stage(_batch())         # the staged inspector back
    assert [dict(c) for c in staged] == [dict(c) for c in reflected]
    assert [c["name"] for c in staged] == [*_batch().column_names, "_gx_row"]


@pytest.mark.parametrize("kwargs", [
    {"column": "A", "batch_id": "b"},
    {"column_list": ["A", "B"], "batch_id": "b", "row_condition": None},
    {"value_set": ["1", "2"], "mostly": 1.0, "parse_strings_as_datetimes": False},
    {"min_value": 1, "max_value": 2.5, "strict_min": False},
    {"nested": {"b": [1, 2], "a": None}, "flag": True},
])
def test_a_metric_id_kept_within_a_run_is_the_id_gx_computes(kwargs):
    from great_expectations.core.id_dict import IDDict

    plain = IDDict(kwargs).to_id()
    with ex.run_speedups():
        first, again = IDDict(kwargs).to_id(), IDDict(dict(kwargs)).to_id()
    assert first == again == plain


def test_the_result_kept_is_gx_serialised_then_compacted():
    import copy

    from transforms.ingest.validate import _compact, _compact_result, duckdb_validator

    result = duckdb_validator().validate(_batch(), _suite())
    assert any(r.result.get("unexpected_index_list") for r in result.results)
    kept, reference = _compact_result(copy.deepcopy(result)), _compact(result.to_json_dict())
    kept.pop("meta"), reference.pop("meta")
    assert json.dumps(kept, sort_keys=True, default=str) == json.dumps(reference, sort_keys=True, default=str)
    assert not any(set(r["result"]) & {"unexpected_list", "unexpected_index_list", "partial_unexpected_list"}
                   for r in kept["results"])
