"""A request is validated and planned once: the command line prepares it before the run and
the plan op takes that, instead of reading the store's schema and planning again."""

from __future__ import annotations

import copy
import json

import pytest

from export_pipeline.cli import prepare_run
from export_pipeline.contract.problems import InvalidRequest
from export_pipeline.planning.prepared import prepare_export, prepared_for_run
from export_pipeline.store.parquet import ParquetMetricSource
from export_pipeline_tests.support.helpers import CountingSource
from export_pipeline_tests.support.requests import SEED_ENVELOPE


def test_the_cli_validates_plans_and_reads_once(demo_store_path):
    source = CountingSource(demo_store_path)
    prepared = prepare_run(copy.deepcopy(SEED_ENVELOPE), source)
    assert source.schema_reads == 1
    assert prepared.plan.request_id == "req-csv-001"
    # the plan op of the run it was prepared for takes it as it is
    config = json.dumps(SEED_ENVELOPE)
    assert prepared_for_run(config, lambda: source, prepared.run_id, prepared) is prepared
    assert source.schema_reads == 1
    for scan in prepared.plan.scans:
        frame, ahead = prepared.read_ahead.fetch(scan.query)
        assert ahead and frame.height > 0
    assert source.fetches == len(prepared.plan.scans) == 1


def test_a_run_the_cli_did_not_prepare_validates_its_run_config(demo_store_path):
    source = CountingSource(demo_store_path)
    prepared = prepare_export(SEED_ENVELOPE, source, run_id="run-a")
    other = prepared_for_run(json.dumps(SEED_ENVELOPE), lambda: source, "run-b", prepared)
    assert other is not prepared and other.run_id == "run-b" and other.read_ahead is None
    assert source.schema_reads == 2
    assert other.plan == prepared.plan


def test_the_run_id_names_a_request_without_one(demo_store_path):
    body = SEED_ENVELOPE["data"]["body"]
    source = ParquetMetricSource(demo_store_path)
    assert prepared_for_run(body, lambda: source, "run-1").plan.request_id == "run-1"
    assert prepare_export(body, source, "run-2").plan.request_id == "run-2"


def test_run_config_that_is_not_a_request_is_invalid(demo_store_path):
    source = ParquetMetricSource(demo_store_path)
    with pytest.raises(InvalidRequest, match="not JSON"):
        prepared_for_run("{", lambda: source, "run-1")
    with pytest.raises(InvalidRequest, match="a request is a JSON object"):
        prepared_for_run("[1]", lambda: source, "run-1")
