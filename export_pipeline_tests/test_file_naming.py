"""Object keys: the extension follows the format, a named file keeps its name, nothing escapes."""

from __future__ import annotations

import pytest

from export_pipeline.file_naming import export_key
from export_pipeline_tests.helpers import utc

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
