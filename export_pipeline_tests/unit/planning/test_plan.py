"""Turning a request into store reads: one scan per window shared by requests that differ
only in their measures."""

from __future__ import annotations

from export_pipeline.planning.plan import plan_export
from export_pipeline.contract.validation import validate_document


def _document(metric_requests, columns):
    return {
        "csvFormat": {
            "columns": [{"heading": "Date"}, {"heading": "Entity"}, *columns],
            "sortBy": [0, 1],
            "rowFilters": ["entity"],
        },
        "metricRequests": metric_requests,
    }


def _request(metric_id, **fields):
    return {"metricId": metric_id, "start": "2024-01-01T00:00:00Z",
            "end": "2024-01-31T23:59:59Z", "aggregationPeriod": "hour", **fields}


def _column(metric_id, measure, **fields):
    return {"heading": f"{metric_id} {measure}", "metricId": metric_id, "fetchValue": measure,
            **fields}


def _plan(document):
    return plan_export(validate_document(document).request, "r")


def test_requests_that_differ_only_in_measures_share_one_scan():
    plan = _plan(_document(
        [_request("a"), _request("b"), _request("c", entities=["e1"])],
        [_column("a", "entries"), _column("b", "exits"), _column("b", "entries"),
         _column("c", "sales_volume")],
    ))
    assert [t.key for t in plan.tasks] == ["request0_window0", "request1_window0", "request2_window0"]
    scans = plan.scans
    assert [s.key for s in scans] == ["request0_window0__request1_window0", "request2_window0"]
    assert scans[0].query.measures == ("entries", "exits")
    assert scans[0].query.window == plan.tasks[0].query.window
    assert scans[1].query == plan.tasks[2].query


def test_a_column_filter_or_another_window_keeps_scans_apart():
    plan = _plan(_document(
        [_request("a"), _request("b"), _request("c", start="2024-01-02T00:00:00Z")],
        [_column("a", "entries"), _column("b", "exits", filter={"segments": "new"}),
         _column("c", "exits")],
    ))
    # b groups by the filter's dimension too, c reads another window: three reads.
    assert len(plan.scans) == 3


def test_the_plan_description_still_lists_one_fetch_per_request_and_window():
    plan = _plan(_document(
        [_request("a"), _request("b")], [_column("a", "entries"), _column("b", "exits")]
    ))
    assert len(plan.scans) == 1
    assert [f["metricId"] for f in plan.describe()["fetches"]] == ["a", "b"]
