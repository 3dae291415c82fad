"""A saved export's job carries the destination-host tag, so schedule and backfill runs count
against the queue's per-host limit from the moment they are queued."""

from export_pipeline.orchestration.saved_export_jobs import saved_export_tags
from export_pipeline.saved_exports.definitions import parse_saved_export
from export_pipeline_tests.unit.saved_exports.test_definitions import definition, relative_body


def test_a_saved_export_with_a_destination_is_tagged_with_its_host_and_one_without_is_not():
    body = {**relative_body(), "destination": {
        "type": "sftp", "server": "Drop.Partner.example", "port": 22, "username": "u", "savedKey": "k"}}
    delivering = parse_saved_export(definition(request=body))
    assert saved_export_tags(delivering)["export_pipeline/destination_host"] == "drop.partner.example"
    assert "export_pipeline/destination_host" not in saved_export_tags(parse_saved_export(definition()))
