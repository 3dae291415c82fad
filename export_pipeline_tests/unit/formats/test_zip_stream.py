"""The streamed zip, opened by the standard library's reader (and ``unzip`` where installed)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import zipfile

import pytest

from export_pipeline.formats.zip_stream import ZipStream

PARTS = {"a.xml": b"<a/>" * 300, "dir/b.xml": os.urandom(5_000), "empty": b""}


def archive(limit: int | None = None, zip64: bool = False) -> bytes:
    package = ZipStream() if limit is None else ZipStream(limit=limit)
    out = []
    for name, data in PARTS.items():
        with package.entry(name, zip64) as entry:
            for start in range(0, len(data), 1_000):
                entry.write(data[start:start + 1_000])
        out.append(package.take())
    package.close()
    out.append(package.take())
    return b"".join(out)


def check(data: bytes, tmp_path) -> zipfile.ZipFile:
    package = zipfile.ZipFile(io.BytesIO(data))
    assert package.testzip() is None
    assert {n: package.read(n) for n in package.namelist()} == PARTS
    assert all(i.compress_type == zipfile.ZIP_DEFLATED and i.flag_bits & 0x08 for i in package.infolist())
    if shutil.which("unzip"):
        (tmp_path / "x.zip").write_bytes(data)
        subprocess.run(["unzip", "-tq", str(tmp_path / "x.zip")], check=True, capture_output=True)
    return package


def test_entries_read_back_deflated_with_data_descriptors(tmp_path):
    data = archive()
    package = check(data, tmp_path)
    assert package.getinfo("a.xml").compress_size < 100  # deflated, not stored
    assert b"PK\x06\x06" not in data  # small: no Zip64 records


def test_zip64_records_past_the_limit(tmp_path):
    """Sizes and offsets past the limit (lowered here from 2 GiB) take Zip64 fields, and the
    archive its Zip64 end records; readers find every entry whole."""
    data = archive(limit=1_000, zip64=True)
    check(data, tmp_path)
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data


def test_an_entry_past_the_limit_without_zip64_is_refused():
    package = ZipStream(limit=1_000)
    with pytest.raises(ValueError, match="without Zip64"), package.entry("big") as entry:
        entry.write(os.urandom(2_000))
