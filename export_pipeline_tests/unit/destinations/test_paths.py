"""Seed 003's path rules and where the file lands."""

from __future__ import annotations

import pytest

from export_pipeline.contract.destination_rules import path_problems
from export_pipeline.destinations.paths import object_key, server_path, temporary_sibling


@pytest.mark.parametrize("path", ["/", "", "folder", "/folder", "folder/", "/a/b/c.csv", "a-b_c.d/e"])
def test_acceptable_paths(path):
    assert path_problems(path) == []


@pytest.mark.parametrize("path,reason", [
    ("folder//sub", "doubled slash"),
    ("//folder", "doubled slash"),
    ("folder//", "doubled slash"),
    ("a/../b", "'..'"),
    ("..", "'..'"),
    ("a/./b", "'.'"),
    ("a\\b", "separator"),
    ("a\nb", "control"),
    ("x" * 1025, "at most 1024"),
])
def test_refused_paths(path, reason):
    assert any(reason in p for p in path_problems(path))


@pytest.mark.parametrize("path,key", [
    ("folder", "folder/f.csv"),  # seed 003's S3 example
    ("/folder/contactsExport.csv", "folder/contactsExport.csv"),  # its "path to folder and file"
    ("folder/", "folder/f.csv"),
    ("/", "f.csv"),
    (None, "f.csv"),
    ("reports/2024.q1/", "reports/2024.q1/f.csv"),
])
def test_s3_keys(path, key):
    assert object_key(path, "f.csv", path_may_name_file=True) == key


def test_gcs_path_is_always_a_folder():
    assert object_key("/audiencetrendsexport", "f.csv", False) == "audiencetrendsexport/f.csv"
    assert object_key("/a/b.c", "f.csv", False) == "a/b.c/f.csv"


def test_server_paths_and_temporary_names():
    assert server_path("/", "f.csv") == "/f.csv"
    assert server_path("/outbox/", "f.csv") == "/outbox/f.csv"
    assert server_path(None, "f.csv") == "f.csv"  # the login folder
    assert temporary_sibling("/outbox/f.csv", "ab12-0") == "/outbox/.f.csv.ab12-0.part"
    assert temporary_sibling("f.csv", "t") == ".f.csv.t.part"
