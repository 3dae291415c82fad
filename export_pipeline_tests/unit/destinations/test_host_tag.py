"""The destination-host run tag the deployment's queue limits runs by."""

from export_pipeline.contract.models import DestinationSpec
from export_pipeline.destinations.host_tag import (
    DESTINATION_HOST_TAG,
    body_destination_host_tags,
    destination_host_tags,
)


def test_each_kind_names_the_host_it_connects_to_and_the_export_bucket_none():
    specs = [
        DestinationSpec(type="ftps", server="FTP.Acme.example"),
        DestinationSpec(type="s3", aws_bucket="acme-drop"),
        DestinationSpec(type="gcs", gcs_bucket="acme-gcs"),
        DestinationSpec(type="aws"),
        DestinationSpec(type="sftp", server="ftp.acme.example"),
    ]
    assert destination_host_tags(specs) == {
        DESTINATION_HOST_TAG: "acme-drop.s3,acme-gcs.storage.googleapis.com,ftp.acme.example"
    }
    assert destination_host_tags([DestinationSpec(type="aws")]) == {}


def test_a_saved_exports_body_is_read_as_written_and_a_broken_destination_carries_no_tag():
    assert body_destination_host_tags({"destination": {"type": "sftp", "server": "h.example"}}) == {
        DESTINATION_HOST_TAG: "h.example"
    }
    assert body_destination_host_tags({"destinations": [{"type": "nope"}]}) == {}
    assert body_destination_host_tags({}) == {}
