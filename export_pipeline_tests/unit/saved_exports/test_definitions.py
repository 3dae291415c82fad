"""Saved export definitions: parsing, every problem at once, and the window each period gets."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import yaml

from export_pipeline_tests.support.requests import REPO
from export_pipeline.contract.problems import InvalidRequest
from export_pipeline.saved_exports.definitions import Cadence, load_saved_exports, parse_saved_export
from export_pipeline_tests.support.requests import SEED_BODY


def relative_body() -> dict:
    body = copy.deepcopy(SEED_BODY)
    for metric_request in body["metricRequests"]:
        del metric_request["start"], metric_request["end"]
    return body


def definition(**overrides) -> dict:
    return {"name": "daily-footfall", "cadence": "daily", "start": "2024-04-01",
            "timezone": "Europe/Berlin", "request": relative_body(), **overrides}


def test_window_is_the_period_in_utc_with_an_inclusive_end():
    saved = parse_saved_export(definition())
    berlin = ZoneInfo("Europe/Berlin")
    document = saved.request_for_window(
        datetime(2024, 10, 27, tzinfo=berlin), datetime(2024, 10, 28, tzinfo=berlin)
    )
    assert document["data"]["id"] == "daily-footfall"
    [metric_request] = document["data"]["body"]["metricRequests"]
    # the day the clocks go back is 25 hours long
    assert metric_request["start"] == "2024-10-26T22:00:00Z"
    assert metric_request["end"] == "2024-10-27T22:59:59.999999Z"
    assert saved.body == relative_body()  # the definition itself is untouched


def test_seed_004_recurring_form():
    saved = parse_saved_export(definition(
        cadence=None, start=None, type="recurring", periodicity="P1W",
        periodStart=1711922400,  # 2024-03-31T22:00:00Z, midnight in Berlin
    ) | {"notification": {"messages": [
        {"policy": "onSuccess", "medium": "email", "target": "a@example.com",
         "title": "{{name}}", "text": "{{signedUrl}}"},
        {"policy": "onFailure", "medium": "telegram", "target": "@ops",
         "title": "{{name}} failed", "text": "{{error}}"},
    ]}})
    assert saved.cadence is Cadence.weekly
    assert saved.start == datetime(2024, 4, 1)
    assert len(saved.notification.messages) == 2


def test_every_problem_at_once_with_paths():
    body = relative_body()
    body["csvFormat"]["sortBy"] = [5]
    body["metricRequests"][0]["start"] = "2024-04-01T00:00:00Z"
    with pytest.raises(InvalidRequest) as caught:
        parse_saved_export(definition(
            name="bad name", cadence=None, periodicity="P2D", timezone="Mars/Olympus",
            request=body, notification={"messages": [
                {"policy": "onSuccess", "medium": "slack", "title": "x", "text": "{{error}}"}
            ]},
        ))
    paths = [p.path for p in caught.value.problems]
    assert paths == [
        "name", "periodicity", "timezone", "request.metricRequests[0].start",
        "notification.messages[0].text", "request.csvFormat.sortBy[0]",
    ]


def test_type_must_be_recurring_and_start_is_required():
    with pytest.raises(InvalidRequest) as caught:
        parse_saved_export(definition(type="oneTime", start=None))
    assert [p.path for p in caught.value.problems] == ["type", "start"]


def test_folder_of_yaml_and_json_with_duplicate_names(tmp_path):
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(definition()))
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "b.json").write_text(json.dumps(definition(name="weekly", cadence="weekly")))
    (tmp_path / "notes.txt").write_text("ignored")
    assert [s.name for s in load_saved_exports(tmp_path)] == ["daily-footfall", "weekly"]
    (tmp_path / "c.yml").write_text(yaml.safe_dump(definition(name="daily_footfall")))
    (tmp_path / "d.yaml").write_text("name: [unclosed")
    with pytest.raises(InvalidRequest) as caught:
        load_saved_exports(tmp_path)
    assert [str(p).split(":")[0:2] for p in caught.value.problems] == [
        ["c.yml", " name"], ["d.yaml", " d.yaml is neither JSON nor YAML"],
    ]


def test_the_shipped_example_is_valid():
    folder = REPO / "export_pipeline" / "examples" / "definitions"
    [saved] = load_saved_exports(folder)
    assert (saved.name, saved.cadence, saved.timezone) == ("daily-entries", Cadence.daily, "Europe/Berlin")
    assert len(saved.notification.messages) == 2
