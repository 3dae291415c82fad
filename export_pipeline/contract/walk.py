"""Reading a raw request document defensively: the rules look at what is there, and a value
of the wrong type is skipped here (the shape pass reports it), so one type error does not hide
another rule's problem."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def items(value: Any) -> Iterator[tuple[int, dict]]:
    if isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, dict):
                yield i, item


def strings(value: Any) -> Iterator[tuple[int, str]]:
    if isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                yield i, item
