"""A zip archive written front to back and handed on in chunks, its entries deflated by ISA-L.

The standard library's ``zipfile`` deflates with zlib, whose fastest level takes several times
longer than ISA-L's level 1 at a ratio no better, and deflating is most of the cost of a large
workbook. The archive is the plain one every zip reader knows: each entry a local header, its
deflated bytes and a data descriptor (the sizes are known only once the entry is written, as
the archive is never seeked back into), then the central directory; Zip64 records where an
entry or the archive outgrows the classic 32-bit fields.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from isal import isal_zlib

LEVEL = 1  # ISA-L's levels run 0 to 3
LIMIT = (1 << 31) - 1  # as zipfile: past this a size or offset takes a Zip64 field (tests lower it)
DEFLATED = 8
VERSION, ZIP64_VERSION = 20, 45
DATA_DESCRIPTOR = 0x08
DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01, the earliest a zip can say: files made alike are alike
DOS_TIME = 0


@dataclass
class _Entry:
    name: bytes
    offset: int
    zip64: bool
    crc: int = 0
    size: int = 0
    compressed: int = 0


class EntryWriter:
    """Deflates what is written into the archive's current entry."""

    def __init__(self, archive: ZipStream, entry: _Entry, level: int) -> None:
        self._archive = archive
        self._entry = entry
        self._deflate = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)

    def write(self, data: bytes) -> None:
        self._entry.crc = isal_zlib.crc32(data, self._entry.crc)
        self._entry.size += len(data)
        self._emit(self._deflate.compress(data))

    def _emit(self, data: bytes) -> None:
        self._entry.compressed += len(data)
        self._archive._emit(data)

    def _finish(self) -> None:
        self._emit(self._deflate.flush())
        entry = self._entry
        if not entry.zip64 and max(entry.size, entry.compressed) > self._archive.limit:
            raise ValueError(f"zip entry {entry.name.decode()} outgrew 2 GiB without Zip64")
        fields = "<4sLQQ" if entry.zip64 else "<4sLLL"
        self._archive._emit(struct.pack(fields, b"PK\x07\x08", entry.crc, entry.compressed, entry.size))


class ZipStream:
    """Write entries one after another; ``take`` hands on the bytes written since last time."""

    def __init__(self, level: int = LEVEL, limit: int = LIMIT) -> None:
        self.level = level
        self.limit = limit
        self._pending: list[bytes] = []
        self._offset = 0
        self._entries: list[_Entry] = []

    def _emit(self, data: bytes) -> None:
        if data:
            self._pending.append(data)
            self._offset += len(data)

    def take(self) -> bytes:
        data, self._pending = b"".join(self._pending), []
        return data

    @contextmanager
    def entry(self, name: str, zip64: bool = False) -> Iterator[EntryWriter]:
        """A new entry: ``zip64`` when it may hold more than 2 GiB, known before it is written."""
        entry = _Entry(name.encode("utf-8"), self._offset, zip64)
        extra = struct.pack("<HHQQ", 1, 16, 0, 0) if zip64 else b""
        unknown = 0xFFFFFFFF if zip64 else 0
        self._emit(struct.pack(
            "<4sHHHHHLLLHH", b"PK\x03\x04", ZIP64_VERSION if zip64 else VERSION, DATA_DESCRIPTOR,
            DEFLATED, DOS_TIME, DOS_DATE, 0, unknown, unknown, len(entry.name), len(extra),
        ) + entry.name + extra)
        writer = EntryWriter(self, entry, self.level)
        yield writer
        writer._finish()
        self._entries.append(entry)

    def add(self, name: str, data: bytes) -> None:
        with self.entry(name) as writer:
            writer.write(data)

    def close(self) -> None:
        """Write the central directory and the end records."""
        start = self._offset
        for entry in self._entries:
            big, far = max(entry.size, entry.compressed) > self.limit, entry.offset > self.limit
            wide = ([entry.size, entry.compressed] if big else []) + ([entry.offset] if far else [])
            extra = struct.pack(f"<HH{len(wide)}Q", 1, 8 * len(wide), *wide) if wide else b""
            version = ZIP64_VERSION if (wide or entry.zip64) else VERSION
            self._emit(struct.pack(
                "<4sHHHHHHLLLHHHHHLL", b"PK\x01\x02", version, version, DATA_DESCRIPTOR, DEFLATED,
                DOS_TIME, DOS_DATE, entry.crc,
                0xFFFFFFFF if big else entry.compressed, 0xFFFFFFFF if big else entry.size,
                len(entry.name), len(extra), 0, 0, 0, 0,
                0xFFFFFFFF if far else entry.offset,
            ) + entry.name + extra)
        end = self._offset
        count, size = len(self._entries), end - start
        if start > self.limit or size > self.limit or count > 0xFFFF:
            self._emit(struct.pack("<4sQHHLLQQQQ", b"PK\x06\x06", 44, ZIP64_VERSION, ZIP64_VERSION,
                                   0, 0, count, count, size, start))
            self._emit(struct.pack("<4sLQL", b"PK\x06\x07", 0, end, 1))
        self._emit(struct.pack("<4sHHHHLLH", b"PK\x05\x06", 0, 0, min(count, 0xFFFF),
                               min(count, 0xFFFF), min(size, 0xFFFFFFFF), min(start, 0xFFFFFFFF), 0))
