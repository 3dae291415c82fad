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


def test_a_request_written_as_an_envelope_is_checked_at_its_paths_in_the_file():
    body = relative_body()
    assert parse_saved_export(definition(request=body)).body_path == "request."
    saved = parse_saved_export(definition(request={"data": {"body": body}}))
    assert (saved.body, saved.body_path) == (body, "request.data.body.")
    body["csvFormat"]["sortBy"] = [5]
    assert problems_of(definition(request={"data": {"body": body}})) == [
        "request.data.body.csvFormat.sortBy[0]: index 5 is out of range (2 columns)"
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
        ["c.yml", " name"], ["d.yaml", " the file is neither JSON nor YAML"],
    ]


def test_the_shipped_example_is_valid():
    folder = REPO / "export_pipeline" / "examples" / "definitions"
    [saved] = load_saved_exports(folder)
    assert (saved.name, saved.cadence, saved.timezone) == ("daily-entries", Cadence.daily, "Europe/Berlin")
    assert len(saved.notification.messages) == 2


def problems_of(document) -> list[str]:
    with pytest.raises(InvalidRequest) as caught:
        parse_saved_export(document)
    return [str(p) for p in caught.value.problems]


def test_start_and_period_start_beyond_what_the_partitions_can_count_are_problems_not_crashes():
    seed = dict(cadence=None, start=None, type="recurring", periodicity="P1D")
    supported = "is outside the supported instants, 1900-01-01T00:00:00Z up to 9999-01-01T00:00:00Z"
    assert problems_of(definition(**seed, periodStart=1e20)) == [f"periodStart: {supported}"]
    assert problems_of(definition(**seed, periodStart=-1e13)) == [f"periodStart: {supported}"]
    for value in (float("nan"), float("inf"), True):
        assert problems_of(definition(**seed, periodStart=value)) == [
            "periodStart: must be a Unix timestamp, in seconds"
        ]
    assert problems_of(definition(start="0001-01-01")) == [f"start: {supported}"]
    assert problems_of(definition(start="9999-12-31")) == [f"start: {supported}"]


def test_start_is_read_as_written():
    # an offset counts at midnight too, in JSON as in YAML's own timestamps
    for start in ("2024-04-01T00:00:00+05:00", yaml.safe_load("s: 2024-04-01T00:00:00+05:00")["s"]):
        assert parse_saved_export(definition(start=start, cadence="hourly")).start == datetime(2024, 3, 31, 21)
    assert parse_saved_export(definition(start="2024-04-01T00:00:00Z")).start == datetime(2024, 4, 1, 2)
    assert parse_saved_export(definition(start="2024-04-01")).start == datetime(2024, 4, 1)
    # a number is not a date: 20240401 is not the Unix second 20,240,401 of August 1970
    [problem] = problems_of(definition(start=20240401))
    assert problem.startswith("start: must be a date or a wall-clock time")


def test_a_name_with_a_trailing_newline_is_refused():
    assert problems_of(definition(name="daily\n")) == [
        "name: must be 1 to 64 letters, digits, '_' or '-', starting with a letter or digit"
    ]


def test_a_definition_without_its_request_still_reports_every_other_problem():
    assert problems_of({"name": "a"}) == [
        "request: required",
        "cadence: required: hourly, daily, weekly or monthly (or periodicity)",
        "start: required: the first period, e.g. 2024-04-01 (or periodStart)",
    ]


def test_the_folder_reports_bad_values_of_every_file_without_crashing(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(definition(name="abc\n")))
    (tmp_path / "b.json").write_text(json.dumps(definition(
        name="b", cadence=None, start=None, type="recurring", periodicity="P1D", periodStart=1e20,
    )))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(definition(name="c")))
    with pytest.raises(InvalidRequest) as caught:
        load_saved_exports(tmp_path)
    assert [p.path for p in caught.value.problems] == ["a.json: name", "b.json: periodStart"]


def test_a_link_that_reaches_no_file_is_a_problem_with_the_others(tmp_path):
    """A broken deploy leaves links whose files are gone: each one is reported, never skipped
    (its saved export and schedule would vanish unseen)."""
    folder = tmp_path / "definitions"
    folder.mkdir()
    (folder / "a.yaml").write_text(yaml.safe_dump(definition(name="a\n")))
    (folder / "b.yaml").symlink_to("release-1/b.yaml")
    (folder / "c.yaml").symlink_to("d.yaml")
    (folder / "d.yaml").symlink_to("c.yaml")
    (folder / "e.yml").symlink_to("b.yaml")
    (folder / "f.json").symlink_to(tmp_path)
    with pytest.raises(InvalidRequest) as caught:
        load_saved_exports(folder)
    assert [str(p) for p in caught.value.problems] == [
        "a.yaml: name: must be 1 to 64 letters, digits, '_' or '-', starting with a letter or digit",
        "b.yaml: is a link to release-1/b.yaml, which does not exist",
        "c.yaml: is a link to d.yaml, in a loop of links that never reaches a file",
        "d.yaml: is a link to c.yaml, in a loop of links that never reaches a file",
        f"e.yml: is a link to b.yaml (and on to {folder / 'release-1' / 'b.yaml'}), which does not exist",
        f"f.json: is a link to {tmp_path}, a folder: links to folders are not followed",
    ]


def test_a_link_to_a_file_outside_the_folder_is_read_and_named_by_the_link(tmp_path):
    """The operator owns what the folder links to (a release folder, a shared file): a link
    is read wherever its file is. Links to folders are not followed."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "weekly.yaml").write_text(yaml.safe_dump(definition(name="weekly", cadence="weekly")))
    folder = tmp_path / "definitions"
    folder.mkdir()
    (folder / "weekly.yaml").symlink_to(shared / "weekly.yaml")
    (folder / "more").symlink_to(shared)  # would load weekly.yaml twice if followed
    [saved] = load_saved_exports(folder)
    assert (saved.name, saved.source) == ("weekly", "weekly.yaml")


def test_a_configmap_mount_and_an_editors_lock_are_not_definitions(tmp_path):
    """Kubernetes mounts a ConfigMap as links through ``..data`` into a ``..<timestamp>``
    folder holding the real files; an editor locks ``daily.yaml`` with a dangling
    ``.#daily.yaml`` link. Each definition loads once, and no lock is a problem."""
    folder = tmp_path / "definitions"
    version = folder / "..2026_12_03_07_00_00.000000001"
    version.mkdir(parents=True)
    (version / "daily.yaml").write_text(yaml.safe_dump(definition()))
    (folder / "..data").symlink_to(version.name)
    (folder / "daily.yaml").symlink_to("..data/daily.yaml")
    (folder / ".#daily.yaml").symlink_to("ops@host.4242:1764745200")
    [saved] = load_saved_exports(folder)
    assert (saved.name, saved.source) == ("daily-footfall", "daily.yaml")


def test_one_definition_per_file(tmp_path):
    """Two definitions in one file (``---`` between them) are a problem naming the file and the
    count, not a parser's error; a lone leading ``---`` is only a separator."""
    (tmp_path / "daily.yaml").write_text("---\n" + yaml.safe_dump(definition()))
    (tmp_path / "both.yaml").write_text(yaml.safe_dump_all([
        definition(name="a"), definition(name="b", cadence="weekly"),
    ], explicit_start=True))
    with pytest.raises(InvalidRequest) as caught:
        load_saved_exports(tmp_path)
    [problem] = caught.value.problems
    assert problem.path == "both.yaml"
    assert problem.message.startswith("the file holds 2 YAML documents, separated by '---'")
    assert str(problem).startswith("both.yaml: the file holds 2")
    assert problem.message.endswith("a file holds one request, or one saved export definition")
    (tmp_path / "both.yaml").unlink()
    assert [s.name for s in load_saved_exports(tmp_path)] == ["daily-footfall"]
