"""Export keys: ``<prefix>/<request id>/<UTC timestamp>_<run>.csv``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from export_pipeline.publishing.keys import (
    DEFAULT_PREFIX,
    export_key,
    export_location,
    fixed_export_key,
    fixed_export_location,
)
from export_pipeline.publishing.publish import ExportResult
from export_pipeline_tests.support.helpers import utc

CREATED = utc(2024, 4, 15, 10, 15, 0)
RUN_ID = "3f2a9c1e-7b44-4d0a-9e1f-0a1b2c3d4e5f"


def test_default_key():
    assert DEFAULT_PREFIX == "exports"
    assert export_key("req-csv-001", CREATED, RUN_ID) == (
        "exports/req-csv-001/2024-04-15T10-15-00Z_3f2a9c1e.csv"
    )


def test_the_timestamp_is_utc_whatever_the_offset():
    tokyo = timezone(timedelta(hours=9))
    created = datetime(2024, 4, 16, 1, 15, 0, tzinfo=tokyo)  # 16:15 UTC the day before
    assert export_key("r", created, RUN_ID) == "exports/r/2024-04-15T16-15-00Z_3f2a9c1e.csv"


def test_sub_second_precision_is_dropped():
    created = utc(2024, 4, 15, 10, 15, 0, 999999)
    assert export_key("r", created, RUN_ID) == "exports/r/2024-04-15T10-15-00Z_3f2a9c1e.csv"


def test_no_colons_in_the_key():
    assert ":" not in export_key("r", CREATED, RUN_ID)


def test_two_runs_in_the_same_second_get_two_keys():
    assert export_key("r", CREATED, "aaaaaaaa-1") != export_key("r", CREATED, "bbbbbbbb-1")


def test_a_short_run_id_is_kept_whole():
    assert export_key("r", CREATED, "abc") == "exports/r/2024-04-15T10-15-00Z_abc.csv"


@pytest.mark.parametrize("prefix", ["custom/exports", "/custom/exports", "custom/exports/", "/custom/exports/"])
def test_the_prefix_is_one_folder_without_stray_slashes(prefix):
    key = export_key("r", CREATED, RUN_ID, prefix=prefix)
    assert key == "custom/exports/r/2024-04-15T10-15-00Z_3f2a9c1e.csv"


def test_the_extension():
    assert export_key("r", CREATED, RUN_ID, extension="csv.gz").endswith("_3f2a9c1e.csv.gz")


@pytest.mark.parametrize("prefix", ["", "/"])
def test_an_empty_prefix_puts_the_request_folder_at_the_root(prefix):
    assert export_key("r", CREATED, RUN_ID, prefix=prefix) == "r/2024-04-15T10-15-00Z_3f2a9c1e.csv"


WHEN = utc(2024, 5, 1, 12, 30, 5)
RUN = "0123456789abcdef"


def test_default_key_is_unchanged():
    assert export_key("req-1", WHEN, RUN) == "exports/req-1/2024-05-01T12-30-05Z_01234567.csv"


@pytest.mark.parametrize("extension", ["csv", "xlsx", "pdf"])
def test_extension_and_file_name(extension):
    key = export_key("req-1", WHEN, RUN, "/exports/", extension=extension, filename="april-footfall")
    assert key == f"exports/req-1/2024-05-01T12-30-05Z_01234567/april-footfall.{extension}"


@pytest.mark.parametrize("filename", ["../x", "a/b", "..", ".", "a.csv", "", "-x", "a\\b"])
def test_names_that_could_leave_the_prefix_are_refused(filename):
    with pytest.raises(ValueError):
        export_key("req-1", WHEN, RUN, filename=filename)


@pytest.mark.parametrize("request_id", ["..", "../x", "a/b", ""])
def test_request_ids_that_could_leave_the_prefix_are_refused(request_id):
    with pytest.raises(ValueError):
        export_key(request_id, WHEN, RUN)


# The name a file is delivered under in a destination's folder (SFTP, FTP, S3, GCS)


def test_delivered_name_without_a_file_name():
    location = export_location("req-1", WHEN, RUN)
    assert location.key == export_key("req-1", WHEN, RUN)
    assert location.delivery_name == "req-1_2024-05-01T12-30-05Z_01234567.csv"


@pytest.mark.parametrize("extension", ["csv", "xlsx", "pdf"])
def test_delivered_name_with_a_file_name_keeps_the_timestamp_and_run(extension):
    location = export_location("req-1", WHEN, RUN, "/exports/", extension=extension, filename="daily")
    assert location.key == f"exports/req-1/2024-05-01T12-30-05Z_01234567/daily.{extension}"
    assert location.delivery_name == f"req-1_2024-05-01T12-30-05Z_01234567_daily.{extension}"


@pytest.mark.parametrize("filename", [None, "daily"])
def test_two_runs_of_a_request_are_delivered_under_two_names(filename):
    first = export_location("req-1", WHEN, "aaaaaaaa-1", filename=filename)
    second = export_location("req-1", WHEN, "bbbbbbbb-1", filename=filename)
    later = export_location("req-1", utc(2024, 5, 2, 12, 30, 5), "aaaaaaaa-1", filename=filename)
    assert len({first.delivery_name, second.delivery_name, later.delivery_name}) == 3


@pytest.mark.parametrize("prefix", ["", "exports", "/custom/exports/"])
def test_the_prefix_is_not_part_of_the_delivered_name(prefix):
    location = export_location("req-1", WHEN, RUN, prefix=prefix, filename="daily")
    assert location.delivery_name == "req-1_2024-05-01T12-30-05Z_01234567_daily.csv"


@pytest.mark.parametrize("request_id,path,prefix,extension,delivered", [
    # a saved export's partition: <prefix>/<name>/<partition>.<ext>
    ("daily-footfall", "daily-footfall/2024-04-01", "exports", "csv", "daily-footfall_2024-04-01.csv"),
    # an export service's file: <prefix>/tenants/<tenant>/<export id>.<ext>
    ("req-1", "tenants/acme/0f3c-77", "/custom/", "xlsx", "req-1_0f3c-77.xlsx"),
    ("req-1", "/tenants/acme/0f3c-77/", "", "pdf", "req-1_0f3c-77.pdf"),
])
def test_a_fixed_key_is_delivered_under_one_name_on_every_run(
    request_id, path, prefix, extension, delivered
):
    location = fixed_export_location(path, request_id, prefix, extension)
    assert location.key == fixed_export_key(path, prefix, extension)
    assert location.delivery_name == delivered
    # as a fixed key has always been delivered: <request id>_<the key's last segment>
    assert location.delivery_name == f"{request_id}_{location.key.rsplit('/', 1)[-1]}"


def test_an_export_result_carries_its_delivered_name():
    location = export_location("req-1", WHEN, RUN, filename="daily")
    result = ExportResult("req-1", "b", location.key, "https://u", 1, 2, location.delivery_name)
    assert result.file_name_at_destination == "req-1_2024-05-01T12-30-05Z_01234567_daily.csv"


def test_a_result_stored_before_the_name_was_carried_keeps_its_old_name():
    result = ExportResult("req-1", "b", "exports/req-1/2024-05-01T12-30-05Z_01234567.csv", "u", 1, 2)
    assert result.file_name_at_destination == "req-1_2024-05-01T12-30-05Z_01234567.csv"
