"""A closed stdout ends the command quietly; a broken pipe of the command's own connections
is not taken for one."""

from __future__ import annotations

import gc

import pytest

from export_pipeline import cli


def test_a_broken_connection_with_stdout_still_read_is_raised(monkeypatch, capfd):
    def broken() -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "main", broken)
    try:
        with pytest.raises(BrokenPipeError):
            cli.console_main()
    finally:
        gc.enable()
    assert not cli.stdout_is_gone()
