"""Which runs the warm run launcher starts itself. The launches and terminations themselves,
with a real export service and Dagster instance, are in the integration tests."""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

import pytest

from export_pipeline.orchestration.run_launcher import runs_here


def _run(executable=sys.executable, image=None, host="localhost", with_origin=True):
    repository = SimpleNamespace(container_image=image, executable_path=executable)
    location = SimpleNamespace(host=host) if host is not None else SimpleNamespace()
    return SimpleNamespace(
        job_code_origin=SimpleNamespace(repository_origin=repository) if with_origin else None,
        remote_job_origin=SimpleNamespace(
            repository_origin=SimpleNamespace(code_location_origin=location)),
    )


@pytest.mark.parametrize("run, here", [
    (_run(), True),                                  # `dg dev`'s own code server
    (_run(host="127.0.0.1"), True),
    (_run(host=None), True),                         # a location this process manages itself
    (_run(host="code-server"), False),               # a code server in another container or host
    (_run(executable=os.path.join(os.path.dirname(sys.executable), "python3")), True),
    (_run(executable="/opt/other/bin/python"), False),  # another Python: its own packages
    (_run(image="exports:1.2"), False),              # code that runs in an image
    (_run(with_origin=False), False),
])
def test_only_runs_of_this_machines_python_start_here(run, here):
    assert runs_here(run) is here
