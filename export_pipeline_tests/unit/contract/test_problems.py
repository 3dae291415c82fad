"""pydantic's errors become Problems in one place: the same path style and words for the
request, a saved export definition and a notification."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from export_pipeline.contract.problems import InvalidRequest, Problem, problems_from
from export_pipeline.notifications.messages import parse_notification
from export_pipeline.saved_exports.definitions import parse_saved_export


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int


class _Holder(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[_Item]


def test_paths_use_brackets_for_indices_and_the_prefix_is_kept():
    with pytest.raises(ValidationError) as raised:
        _Holder.model_validate({"items": [{"count": 1}, {"count": [1], "bogus": 1}], "more": 1})
    assert sorted(problems_from(raised.value, "data.body.")) == sorted([
        Problem("data.body.items[1].count", "must be an integer"),
        Problem("data.body.items[1].bogus", "unknown field"),
        Problem("data.body.more", "unknown field"),
    ])


def test_an_error_of_the_whole_object_has_the_prefix_as_its_path():
    with pytest.raises(ValidationError) as raised:
        _Item.model_validate([])
    assert [p.path for p in problems_from(raised.value, "notification.messages[0].")] == [
        "notification.messages[0]"
    ]


def test_a_notification_names_its_fields_like_a_request_does():
    _, problems = parse_notification({"messages": [{"medium": "email", "policy": "onSuccess",
                                                     "bogus": 1}]})
    assert Problem("notification.messages[0].bogus", "unknown field") in problems


def test_a_saved_export_names_list_items_with_brackets():
    with pytest.raises(InvalidRequest) as raised:
        parse_saved_export({
            "name": "x", "cadence": "daily", "start": "2024-01-01",
            "request": {"csvFormat": {}, "metricRequests": []},
            "notification": {"messages": [{"medium": 3}]},
        })
    paths = [p.path for p in raised.value.problems]
    assert "notification.messages[0].medium" in paths
    assert not any(".0." in p or p.endswith(".0") for p in paths)
