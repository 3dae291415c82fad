"""Where the file lands on the far side, and seed 003's path rules.

``destination.path`` is a folder for SFTP, FTP and GCS. For S3 it is a folder or, when its
last segment has an extension (``folder/report.csv``), the object key itself. A leading or a
single trailing slash is accepted (S3 and GCS keys drop them); a doubled slash, a ``.`` or
``..`` segment, a backslash or a control character is refused, so a request can neither
produce a key with an empty segment nor climb out of a folder.
"""

from __future__ import annotations

import posixpath
import re

MAX_PATH_LENGTH = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def path_problems(path: str) -> list[str]:
    """Why ``path`` is not acceptable (empty when it is)."""
    problems = []
    if len(path) > MAX_PATH_LENGTH:
        problems.append(f"must be at most {MAX_PATH_LENGTH} characters")
    if "//" in path:
        problems.append("must not contain a doubled slash ('//')")
    if "\\" in path:
        problems.append("must use '/' as the separator, not '\\'")
    if _CONTROL.search(path):
        problems.append("must not contain control characters")
    if any(segment in (".", "..") for segment in path.split("/")):
        problems.append("must not contain '.' or '..' segments")
    return problems


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
