"""The export job's config schema, generated from the request models: what the Launchpad checks
before a run exists, and what it describes and scaffolds."""

from __future__ import annotations

import copy

import dagster as dg
from dagster._config import ConfigTypeKind, validate_config
import pytest

from export_pipeline.contract.models import (
    Column,
    CsvFormat,
    DestinationSpec,
    ExportRequest,
    MetricRequest,
    OutputOptions,
)
from export_pipeline.orchestration.jobs import export_job
from export_pipeline.orchestration.request_config import request_config_schema
from export_pipeline_tests.support.requests import SEED_BODY, SEED_ENVELOPE


def config_errors(document) -> list[str]:
    """Dagster's verdict on ``document`` as the export job's run config: its config schema,
    checked as the Launchpad checks it (without running any code of ours)."""
    result = validate_config(export_job.config_mapping.config_schema.config_type, document)
    return [e.message for e in result.errors or []]


def with_change(document: dict, change) -> dict:
    document = copy.deepcopy(document)
    change(document)
    return document


def test_the_seed_body_and_its_envelope_are_valid_as_they_are():
    assert config_errors(SEED_BODY) == []
    assert config_errors(SEED_ENVELOPE) == []


def test_a_misspelt_field_is_flagged_where_it_is():
    def misspell(d):
        d["csvFormat"]["sortby"] = d["csvFormat"].pop("sortBy")

    [missing, unexpected] = sorted(config_errors(with_change(SEED_BODY, misspell)))
    assert 'Missing required config entry "sortBy" at path root:csvFormat' in missing
    assert 'unexpected config entry "sortby" at path root:csvFormat' in unexpected

    def misspell_in_envelope(d):
        d["data"]["body"]["metricRequests"][0]["aggregationperiod"] = "day"

    [error] = config_errors(with_change(SEED_ENVELOPE, misspell_in_envelope))
    assert 'unexpected config entry "aggregationperiod" at path root:data:body:metricRequests[0]' in error


@pytest.mark.parametrize("change, path", [
    (lambda d: d["metricRequests"][0].update(facets="segments"), "root:metricRequests[0]:facets"),
    (lambda d: d["csvFormat"].update(sortBy=[{"column": 0}]), "root:csvFormat:sortBy[0]"),
    (lambda d: d["metricRequests"][0].update(aggregationPeriod="fortnight"),
     "root:metricRequests[0]:aggregationPeriod"),
    (lambda d: d["metricRequests"][0].update(start=20240401), "root:metricRequests[0]:start"),
    (lambda d: d.update(format={"formulaGuard": "yes"}), "root:format:formulaGuard"),
])
def test_a_wrong_type_is_flagged(change, path):
    [error] = config_errors(with_change(SEED_BODY, change))
    assert f"at path {path}" in error


def test_what_is_missing_is_named_so_the_launchpad_can_scaffold_it():
    [error] = config_errors({"data": {"body": {}}})
    assert error.startswith("Missing required config entries")
    assert "csvFormat" in error and "metricRequests" in error and "root:data:body" in error
    [error] = config_errors({"data": {}})
    assert 'Missing required config entry "body" at path root:data' in error
    errors = config_errors({"csvFormat": {"columns": [{}]}, "metricRequests": [{}]})
    text = "\n".join(errors)
    assert '"heading" at path root:csvFormat:columns[0]' in text
    assert "sortBy" in text and "rowFilters" in text


@pytest.mark.parametrize("document", [
    with_change(SEED_BODY, lambda d: d.update(format="XLSX")),
    with_change(SEED_BODY, lambda d: d.update(format={"extension": "pdf", "timezone": "Europe/Berlin",
                                                      "outputFormat": "crosstab"})),
    with_change(SEED_BODY, lambda d: d["metricRequests"][0].update(
        start=None, end=None, **{"from": 1711929600, "to": 1714521599.5})),
    with_change(SEED_BODY, lambda d: d["csvFormat"]["columns"][1].update(
        filter={"segments": ["a", "b"], "zone": "north"})),
    with_change(SEED_BODY, lambda d: d.update(destination={
        "type": "SFTP", "server": "files.example.com", "port": "22", "username": "u",
        "savedKey": "k", "path": "/in"})),
])
def test_what_the_wire_allows_the_config_allows(document):
    """Widened inputs: a format string, any-case enums, a port as a string, filter values as a
    string or a list, Unix seconds as integers or decimals."""
    assert config_errors(document) == []


def shape_fields(config_type) -> dict:
    return {name: field for name, field in config_type.fields.items()}


def inner(field):
    config_type = field.config_type
    while config_type.kind in (ConfigTypeKind.NONEABLE, ConfigTypeKind.ARRAY):
        config_type = config_type.inner_type
    if config_type.kind == ConfigTypeKind.SCALAR_UNION:
        config_type = config_type.non_scalar_type
    return config_type


def wire_names(model) -> set[str]:
    return {f.alias or name for name, f in model.model_fields.items()}


def test_every_model_field_is_there_under_its_wire_name_with_a_description():
    root = shape_fields(dg.Field(request_config_schema()).config_type)
    assert set(root) == wire_names(ExportRequest) | {"action", "data"}
    body = shape_fields(inner(shape_fields(inner(root["data"]))["body"]))
    assert set(body) == wire_names(ExportRequest)
    nested = {
        CsvFormat: inner(body["csvFormat"]),
        Column: inner(shape_fields(inner(body["csvFormat"]))["columns"]),
        MetricRequest: inner(body["metricRequests"]),
        OutputOptions: inner(body["format"]),
        DestinationSpec: inner(body["destination"]),
    }
    for model, config_type in nested.items():
        fields = shape_fields(config_type)
        assert set(fields) == wire_names(model), model
        for name, field in fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
    assert "from" in shape_fields(nested[MetricRequest]) and "from_" not in shape_fields(nested[MetricRequest])
    assert {"csvFormat", "sortBy", "rowFilters", "fetchValue", "metricId", "aggregationPeriod"} <= (
        set(body) | set(shape_fields(nested[CsvFormat])) | set(shape_fields(nested[Column]))
        | set(shape_fields(nested[MetricRequest]))
    )


def test_required_fields_follow_the_models():
    body = shape_fields(inner(shape_fields(inner(shape_fields(
        dg.Field(request_config_schema()).config_type)["data"]))["body"]))
    assert {n for n, f in body.items() if f.is_required} == {"csvFormat", "metricRequests"}
    columns = shape_fields(inner(shape_fields(inner(body["csvFormat"]))["columns"]))
    assert {n for n, f in columns.items() if f.is_required} == {"heading"}
    assert "Default: day." in shape_fields(inner(body["metricRequests"]))["aggregationPeriod"].description
