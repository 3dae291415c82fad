"""Reading request documents: JSON or YAML, and whatever a user's file holds is answered with
InvalidRequest naming what is wrong, never a parser's exception."""

from __future__ import annotations

import json

import pytest

from export_pipeline.contract.documents import (
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    MAX_VALUES,
    decode_document,
    load_document,
    read_document,
)
from export_pipeline.contract.problems import InvalidRequest, Problem
from export_pipeline_tests.support.requests import SEED_ENVELOPE


def problems(text) -> list[Problem]:
    with pytest.raises(InvalidRequest) as raised:
        decode_document(text) if isinstance(text, bytes) else load_document(text)
    return raised.value.problems


def test_json_and_yaml_read_the_same_request():
    as_json = json.dumps(SEED_ENVELOPE)
    import yaml

    assert load_document(as_json) == load_document(yaml.safe_dump(SEED_ENVELOPE)) == SEED_ENVELOPE


def test_bytes_that_are_not_utf8_are_refused_with_where():
    [problem] = problems(b'{"a": "caf\xe9"}')
    assert problem.path == "" and "not UTF-8" in problem.message and "byte 10" in problem.message


def test_a_utf8_byte_order_mark_is_allowed():
    assert decode_document(b"\xef\xbb\xbf" + json.dumps(SEED_ENVELOPE).encode()) == SEED_ENVELOPE


@pytest.mark.parametrize("text", [
    "[" * 200_000,                      # JSON, 200 KB of brackets
    "{\"a\": " * 40_000,                # JSON objects
    "a: " + "[" * 200_000,              # YAML flow sequences
    "- " * 100_000 + "x",               # YAML block sequences
], ids=["json-arrays", "json-objects", "yaml-flow", "yaml-block"])
def test_deep_nesting_is_refused_not_a_recursion_error(text):
    [problem] = problems(text)
    assert f"nested deeper than {MAX_DEPTH} levels" in problem.message


def _yaml_sequences(depth: int) -> str:
    """``depth`` block sequences, one inside the other, around a scalar."""
    return "".join("  " * i + "-\n" for i in range(depth - 1)) + "  " * (depth - 1) + "- x\n"


def test_the_maximum_depth_itself_is_accepted_in_json_and_yaml():
    assert load_document("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    [problem] = problems("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert "nested deeper" in problem.message
    nested = load_document(_yaml_sequences(MAX_DEPTH))
    for _ in range(MAX_DEPTH - 1):
        nested = nested[0]
    assert nested == ["x"]
    [problem] = problems(_yaml_sequences(MAX_DEPTH + 1))
    assert "nested deeper" in problem.message


def test_brackets_inside_strings_do_not_count():
    text = json.dumps({"title": "[" * 1000})
    assert load_document(text) == {"title": "[" * 1000}


def test_a_document_larger_than_the_limit_is_refused():
    [problem] = problems(b" " * (MAX_DOCUMENT_BYTES + 1))
    assert f"larger than {MAX_DOCUMENT_BYTES} bytes" in problem.message


def test_a_key_given_twice_in_json_is_refused_at_its_path():
    text = json.dumps(SEED_ENVELOPE).replace('"sortBy": [0]', '"sortBy": [0], "sortBy": [1]')
    assert problems(text) == [Problem(
        "data.body.csvFormat.sortBy", "is given twice in the same object; give it once"
    )]
    listed = '{"columns": [{"heading": "a"}, {"heading": "b", "heading": "c"}]}'
    assert [p.path for p in problems(listed)] == ["columns[1].heading"]


def test_a_key_given_twice_in_yaml_is_refused_at_its_path():
    text = "data:\n  body:\n    csvFormat:\n      sortBy: [0]\n      rowFilters: [entity]\n      sortBy: [1]\n"
    assert problems(text) == [Problem(
        "data.body.csvFormat.sortBy", "is given twice in the same mapping; give it once"
    )]


def test_a_yaml_merge_may_override_as_yaml_means_it():
    assert load_document("base: &b {x: 1, y: 2}\nuse: {<<: *b, y: 3}\n")["use"] == {"x": 1, "y": 3}


def test_yaml_aliases_that_expand_beyond_the_limit_are_refused():
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 8):
        previous, name = chr(96 + i), chr(97 + i)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    [problem] = problems("\n".join(lines))
    assert f"more than {MAX_VALUES} values" in problem.message
    [problem] = problems("a: &a [*a]")
    assert "nested deeper" in problem.message


def test_neither_json_nor_yaml():
    [problem] = problems("{not json: [")
    assert "neither JSON nor YAML" in problem.message


def test_several_yaml_documents_are_counted_not_called_neither_json_nor_yaml(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text("---\na: 1\n---\nb: 2\n---\n# a comment, nothing more\n")
    with pytest.raises(InvalidRequest) as raised:
        read_document(str(path), "two.yaml")
    assert [str(p) for p in raised.value.problems] == [
        "two.yaml holds 2 YAML documents, separated by '---' (the second starts on line 3): "
        "a file holds one request, or one saved export definition"
    ]


@pytest.mark.parametrize("text", ["---\na: 1\n", "a: 1\n---\n", "--- # a comment\na: 1\n...\n"])
def test_a_separator_with_nothing_after_it_leaves_one_document(text):
    assert load_document(text) == {"a": 1}


@pytest.mark.parametrize("text", ["a: b\x00", "csvFormat: \x07{}", "\x1b[31m"])
def test_a_control_character_is_a_problem_not_a_crash(text):
    [problem] = problems(text)
    assert problem.path == "" and "neither JSON nor YAML" in problem.message


def test_read_document_names_the_file(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('{"heading": "Entrées"}'.encode("latin-1"))
    with pytest.raises(InvalidRequest) as raised:
        read_document(str(path))
    assert str(path) in raised.value.problems[0].message
    with pytest.raises(InvalidRequest, match="cannot read"):
        read_document(str(tmp_path / "missing.json"))


@pytest.mark.parametrize("text", [
    '{"to": ' + "1" * 5000 + "}", "to: " + "1" * 5000, "start: 2024-13-45", "to: !!float nope",
], ids=["json-long-int", "yaml-long-int", "yaml-bad-date", "yaml-bad-float"])
def test_a_value_the_parser_cannot_convert_is_refused(text):
    [problem] = problems(text)
    assert "holds a value that cannot be read" in problem.message
