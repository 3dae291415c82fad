"""Where the file lands on the far side.

``destination.path`` is a folder for SFTP, FTP and GCS. For S3 it is a folder or, when its
last segment has an extension (``folder/report.csv``), the object key itself. The request's
validation (``contract.destination_rules.path_problems``) has refused any path that could
make a key with an empty segment or climb out of a folder before it gets here.
"""

from __future__ import annotations

import contextlib
import posixpath
from typing import Callable


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


def replace_through_aside(
    rename: Callable[[str, str], object],
    remove: Callable[[str], object],
    final: str,
    attempt_tag: str,
    refused: type[BaseException] | tuple[type[BaseException], ...],
) -> None:
    """Put the upload's temporary file (``temporary_sibling``) at ``final`` on a server whose rename will not replace a file (plain
    SFTP, some FTP servers). The file already at ``final`` (a fixed key's previous export) is
    moved aside first and deleted only once the new one is in place; if the new one cannot
    take its place, the old one goes back. Deleting it first would lose it whenever the
    rename then fails. ``refused`` is what the server's refusals raise."""
    temporary = temporary_sibling(final, attempt_tag)
    aside = temporary_sibling(final, f"{attempt_tag}.old")
    try:
        rename(final, aside)
        moved = True
    except refused:  # nothing there (if it could not be moved, the rename below fails too)
        moved = False
    try:
        rename(temporary, final)
    except BaseException:
        if moved:
            with contextlib.suppress(refused):
                rename(aside, final)
        raise
    if moved:
        with contextlib.suppress(refused):
            remove(aside)
