"""Where the file lands on the far side.

``destination.path`` is a folder for SFTP, FTP and GCS. For S3 it is a folder or, when its
last segment has an extension (``folder/report.csv``), the object key itself. The request's
validation (``contract.destination_rules.path_problems``) has refused any path that could
make a key with an empty segment or climb out of a folder before it gets here.
"""

from __future__ import annotations

import posixpath


def _segments(path: str | None) -> list[str]:
    return [s for s in (path or "").split("/") if s]


def object_key(path: str | None, file_name: str, path_may_name_file: bool) -> str:
    """An S3/GCS key: the folder ``path`` plus ``file_name``, or ``path`` itself when it
    names a file (S3 only)."""
    segments = _segments(path)
    trailing_slash = bool(path) and path.endswith("/")
    if path_may_name_file and segments and not trailing_slash and "." in segments[-1]:
        return "/".join(segments)
    return "/".join([*segments, file_name])


def server_path(path: str | None, file_name: str) -> str:
    """A file path on an (S)FTP server: relative paths start at the login folder."""
    if not path:
        return file_name
    return posixpath.join(path, file_name)


def temporary_sibling(final_path: str, tag: str) -> str:
    """A hidden name in the same folder (so a rename is atomic), fixed per run and destination
    so a retried delivery overwrites its own leftover instead of adding another."""
    folder, name = posixpath.split(final_path)
    return posixpath.join(folder, f".{name}.{tag}.part")
