"""``export-pipeline service-state copy`` between SQLite files: every record and quota count
goes over, and what must be refused is, leaving the target as it was. The copy into a real
PostgreSQL is in ``integration/service/test_state_copy_postgres.py``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from export_pipeline.cli import EXIT_FAILED, EXIT_INVALID, EXIT_OK, main
from export_pipeline.service.state import open_state
from export_pipeline_tests.support.state_contract import T0, fill_as_the_service_does, record

TENANTS = ("acme", "globex", "hooli")


@pytest.fixture
def source(tmp_path) -> Path:
    path = tmp_path / "home" / "export-service.sqlite"
    store = open_state(path)
    fill_as_the_service_does(store)
    store.close()
    return path


def _copy(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["service-state", "copy", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _everything(location) -> list:
    store = open_state(location, create=False)
    try:
        return list(store.all_records())
    finally:
        store.close()


def test_every_record_and_quota_count_goes_over(source, tmp_path, capsys):
    target = tmp_path / "new" / "state.sqlite"
    code, out, err = _copy(capsys, "--from", str(source), "--to", str(target))
    assert (code, err) == (EXIT_OK, "")
    assert out == (f"copied 18 export record(s) (acme 6, globex 6, hooli 6) "
                   f"from {source} to {target}\n")
    assert _everything(target) == _everything(source)
    before, after = open_state(source), open_state(target)
    for tenant in TENANTS:
        assert after.created_since(tenant, T0) == before.created_since(tenant, T0) == 6
    before.close()
    after.close()


def test_a_target_holding_records_is_refused_and_left_as_it_was(source, tmp_path, capsys):
    target = tmp_path / "target.sqlite"
    store = open_state(target)
    store.insert(record(1))
    store.close()
    held = _everything(target)
    code, out, err = _copy(capsys, "--from", str(source), "--to", str(target))
    assert code == EXIT_INVALID and out == ""
    assert f"--to {target}: already holds 1 export record(s)" in err and "--merge" in err
    assert _everything(target) == held


def test_merge_skips_the_records_the_target_holds(source, tmp_path, capsys):
    target = tmp_path / "target.sqlite"
    assert _copy(capsys, "--from", str(source), "--to", str(target))[0] == EXIT_OK
    store = open_state(target)
    first = next(store.all_records())
    store.remove(first.tenant, first.id)
    store.insert(record(1, tenant="initech"))
    store.close()
    code, out, err = _copy(capsys, "--from", str(source), "--to", str(target), "--merge")
    assert (code, err) == (EXIT_OK, "")
    assert out.startswith(f"copied 1 export record(s) ({first.tenant} 1) from ")
    assert "; skipped 17 the target held (" in out
    assert _everything(target) == sorted([*_everything(source), record(1, tenant="initech")],
                                         key=lambda r: r.id)


def test_merge_refuses_an_id_the_target_holds_for_another_tenant(source, tmp_path, capsys):
    stolen = _everything(source)[-1]
    target = tmp_path / "target.sqlite"
    store = open_state(target)
    store.insert(record(1, tenant="initech", id=stolen.id))
    store.close()
    held = _everything(target)
    code, _, err = _copy(capsys, "--from", str(source), "--to", str(target), "--merge")
    assert code == EXIT_INVALID
    assert f"holds export {stolen.id} for tenant initech, not {stolen.tenant}" in err
    assert _everything(target) == held


def test_a_missing_source_is_refused_and_not_created(tmp_path, capsys):
    missing, target = tmp_path / "typo" / "state.sqlite", tmp_path / "target.sqlite"
    code, out, err = _copy(capsys, "--from", str(missing), "--to", str(target))
    assert (code, out) == (EXIT_INVALID, "")
    assert f"--from {missing}: no such file" in err
    assert not missing.parent.exists() and not target.exists()


def test_a_file_that_is_no_state_is_refused_and_left_alone(tmp_path, capsys):
    other = tmp_path / "runs.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE runs (id TEXT)")
    db.close()
    content = other.read_bytes()
    code, _, err = _copy(capsys, "--from", str(other), "--to", str(tmp_path / "target.sqlite"))
    assert code == EXIT_INVALID and "not an export service state" in err
    assert other.read_bytes() == content and not (tmp_path / "target.sqlite").exists()


def test_the_same_state_twice_is_refused(source, tmp_path, capsys):
    link = tmp_path / "link.sqlite"
    link.symlink_to(source)
    held = _everything(source)
    for target in (source, source.parent / ".." / "home" / source.name, link):
        code, _, err = _copy(capsys, "--from", str(source), "--to", str(target))
        assert code == EXIT_INVALID and "--from and --to name the same state" in err
    code, _, err = _copy(capsys, "--from", "postgresql://db:5432/exports",
                         "--to", "postgres://DB/exports")
    assert code == EXIT_INVALID and "--from and --to name the same state" in err
    assert _everything(source) == held


@pytest.mark.parametrize("argument", ["--from", "--to"])
@pytest.mark.parametrize("url, mentions", [
    ("postgresql://exports:s3cret@db.internal/exports", "must not carry a password"),
    ("postgresql://db.internal/exports?password=s3cret", "must not carry a password"),
    ("mysql://exports:s3cret@db.internal/exports", "a SQLite file path or postgresql://"),
])
def test_a_refused_url_names_the_argument_and_not_its_secret(argument, url, mentions, source,
                                                            tmp_path, capsys):
    other = str(source if argument == "--to" else tmp_path / "target.sqlite")
    code, out, err = _copy(capsys, argument, url, "--from" if argument == "--to" else "--to", other)
    assert code == EXIT_INVALID and f"{argument}: " in err and mentions in err
    assert "s3cret" not in out + err and not (tmp_path / "target.sqlite").exists()


def test_a_copy_that_fails_midway_leaves_no_new_target(source, tmp_path, capsys):
    with sqlite3.connect(source) as db:
        db.execute("UPDATE exports SET created = 'not a time' WHERE id = (SELECT max(id) FROM exports)")
    db.close()
    target = tmp_path / "target.sqlite"
    code, out, err = _copy(capsys, "--from", str(source), "--to", str(target))
    assert code == EXIT_FAILED and out == "" and "service-state copy failed" in err
    assert not target.exists()
