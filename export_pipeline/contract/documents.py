"""Reading request documents: JSON, or YAML (a superset, as the Launchpad takes it).

A document comes from a user (a file, standard input, an inbox object, a saved export), so
whatever it holds is answered with ``InvalidRequest``, never a parser's traceback: it must be
UTF-8 text of at most ``MAX_DOCUMENT_BYTES``, nested at most ``MAX_DEPTH`` levels (the
parsers recurse, and 100 000 ``[`` would exhaust Python's stack), name each key of an object
once (JSON and YAML parsers silently keep the last of two, so one of the user's values would
be dropped unseen) and, through YAML aliases, expand to at most ``MAX_VALUES`` values.
"""

from __future__ import annotations

import json
import re
import sys
from itertools import accumulate
from typing import Any, BinaryIO

import yaml

from export_pipeline.contract.problems import InvalidRequest, Problem

MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_VALUES = 100_000

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULL_TAG = "tag:yaml.org,2002:null"


def read_document(path: str, source: str | None = None) -> Any:
    """Read a request file; ``-`` reads standard input. ``source`` names it in problems."""
    if path == "-":
        return decode_document(_read_at_most(sys.stdin.buffer), "standard input")
    try:
        with open(path, "rb") as file:
            data = _read_at_most(file)
    except OSError as error:
        raise InvalidRequest([Problem("", f"cannot read {path}: {error.strerror}")]) from None
    return decode_document(data, source or path)


def _read_at_most(file: BinaryIO) -> bytes:
    return file.read(MAX_DOCUMENT_BYTES + 1)


def decode_document(data: bytes, source: str = "<request>", yaml_too: bool = True) -> Any:
    """Parse a document's bytes: UTF-8 (a leading byte-order mark is allowed), then JSON/YAML."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise InvalidRequest([Problem("", f"{source} is larger than {MAX_DOCUMENT_BYTES} bytes")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidRequest([Problem(
            "", f"{source} is not UTF-8 text (byte {error.start} is {data[error.start]:#04x})"
        )]) from None
    return load_document(text, source, yaml_too)


def decode_json_document(data: bytes, source: str = "<request>") -> Any:
    """``decode_document`` for a JSON body (an HTTP API's): the same rules, no YAML."""
    return decode_document(data, source, yaml_too=False)


def load_document(text: str, source: str = "<request>", yaml_too: bool = True) -> Any:
    """Parse a request document's text: JSON, else YAML."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES:
        raise InvalidRequest([Problem("", f"{source} is larger than {MAX_DOCUMENT_BYTES} bytes")])
    if text.lstrip()[:1] in ("[", "{") and _json_depth(text) > MAX_DEPTH:
        raise InvalidRequest([_too_deep(source)])
    try:
        document = json.loads(text, object_pairs_hook=_pairs_noting)
    except json.JSONDecodeError as json_error:
        if not yaml_too:
            raise InvalidRequest([Problem("", f"{source} is not JSON: {json_error}")]) from None
        return _load_yaml(text, source, json_error)
    except ValueError as error:  # a number with more digits than Python converts
        raise InvalidRequest([_unreadable(source, error)]) from None
    except RecursionError:  # a bound the depth check did not foresee
        raise InvalidRequest([_too_deep(source)]) from None
    problems = _value_problems(document)
    if problems:
        raise InvalidRequest(problems)
    return document


def _unreadable(source: str, error: Exception) -> Problem:
    return Problem("", f"{source} holds a value that cannot be read: {error}")


def _too_deep(source: str, where: str = "") -> Problem:
    return Problem("", f"{source}{where} is nested deeper than {MAX_DEPTH} levels")


def _json_depth(text: str) -> int:
    """The deepest bracket nesting of JSON text, strings left out; linear, no recursion."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0)


class _Duplicated(dict):
    """An object that named a key twice; ``keys_twice`` are those keys."""

    keys_twice: list[str]


def _pairs_noting(items: list[tuple[str, Any]]) -> dict:
    """An object, noting the keys it names twice (``_Duplicated``)."""
    mapping = dict(items)
    if len(mapping) == len(items):
        return mapping
    seen: set[str] = set()
    noted = _Duplicated(mapping)
    noted.keys_twice = [k for k, _ in items if k in seen or seen.add(k)]
    return noted


def _value_problems(document: Any) -> list[Problem]:
    """A problem at each key an object names twice, and at each string that is not text: a
    JSON escape such as ``\\ud800`` reads as half a character, which no file, database or
    response can hold (the document is at most MAX_DEPTH deep)."""
    problems: list[Problem] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, _Duplicated):
            problems.extend(
                Problem(_join(path, k), "is given twice in the same object; give it once")
                for k in dict.fromkeys(value.keys_twice)
            )
        if isinstance(value, str) and not _is_text(value):
            problems.append(Problem(path, "is not text: it holds half of a UTF-16 surrogate pair"))
        elif isinstance(value, dict):
            for key, item in value.items():
                if not _is_text(key):
                    problems.append(Problem(path, "names a key that is not text (half of a UTF-16 surrogate pair)"))
                    continue
                walk(item, _join(path, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]")

    walk(document, "")
    return problems


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


class _TooDeep(yaml.YAMLError):
    def __init__(self, mark: yaml.Mark | None):
        self.mark = mark


class _GuardedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, composing at most MAX_DEPTH nested collections (its composer
    recurses once per level)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if not self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise _TooDeep(self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _load_yaml(text: str, source: str, json_error: json.JSONDecodeError) -> Any:
    def neither() -> InvalidRequest:
        return InvalidRequest([Problem("", f"{source} is neither JSON nor YAML: {json_error}")])

    try:
        loader = _GuardedLoader(text)  # refuses non-printable characters as it is built
    except yaml.YAMLError:
        raise neither() from None
    try:
        documents = _yaml_documents(loader)
        node = documents[0][1] if len(documents) == 1 else None
        problems = _yaml_node_problems(node, source) if node is not None else []
        document = None if node is None or problems else loader.construct_document(node)
    except _TooDeep as error:
        where = f" (line {error.mark.line + 1})" if error.mark else ""
        raise InvalidRequest([_too_deep(source, where)]) from None
    except yaml.YAMLError:
        raise neither() from None
    except (ValueError, TypeError) as error:  # a tagged or implicit value out of range
        raise InvalidRequest([_unreadable(source, error)]) from None
    except RecursionError:
        raise InvalidRequest([_too_deep(source)]) from None
    finally:
        loader.dispose()
    if len(documents) > 1:
        raise InvalidRequest([Problem("", (
            f"{source} holds {len(documents)} YAML documents, separated by '---' (the second "
            f"starts on line {documents[1][0]}): a file holds one request, or one saved export "
            "definition"
        ))])
    problems = problems or _value_problems(document)
    if problems:
        raise InvalidRequest(problems)
    return document


def _yaml_documents(loader: _GuardedLoader) -> list[tuple[int, yaml.Node]]:
    """The stream's documents that hold something, each with the line it starts on. PyYAML's
    own refusal of a second one would read as neither JSON nor YAML, hiding the stray ``---``,
    so they are counted here. A ``---`` with nothing (or only comments) after it, before or
    after the one document, adds nothing and is not counted."""
    documents = []
    while loader.check_node():
        line = loader.peek_event().start_mark.line + 1
        node = loader.get_node()
        if not (isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG and node.value == ""):
            documents.append((line, node))
    return documents


def _yaml_node_problems(root: yaml.Node, source: str) -> list[Problem]:
    """Keys given twice in a mapping (a merge ``<<`` may override, as YAML means it), and
    aliases that expand the document beyond MAX_VALUES values or MAX_DEPTH levels."""
    problems: list[Problem] = []
    count = 0
    stack: list[tuple[yaml.Node, str, int]] = [(root, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            return [Problem("", f"{source} holds more than {MAX_VALUES} values (with its aliases expanded)")]
        if isinstance(node, yaml.CollectionNode) and depth >= MAX_DEPTH:
            return [_too_deep(source, " (with its aliases expanded)")]
        if isinstance(node, yaml.MappingNode):
            seen: set[tuple[str, str]] = set()
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    stack.append((value_node, path, depth))
                    continue
                key = (key_node.tag, key_node.value) if isinstance(key_node, yaml.ScalarNode) else None
                name = key_node.value if key is not None else "?"
                if key is not None and key in seen:
                    problems.append(Problem(
                        _join(path, name), "is given twice in the same mapping; give it once"
                    ))
                if key is not None:
                    seen.add(key)
                stack.append((value_node, _join(path, name), depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(node.value))
    return sorted(set(problems))
