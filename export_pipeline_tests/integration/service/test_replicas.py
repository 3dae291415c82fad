"""Two export service processes behind one PostgreSQL state (and one Dagster instance, in the
same server), as two replicas run: each sees, lists and deletes the other's exports, a quota
raced across both admits exactly its number, and both draw on one rate limit bucket. The
runs stay queued (no daemon): what is tested is the service's own records."""

from __future__ import annotations

import shutil
import threading

import pytest

from export_pipeline_tests.conftest import FAKE_CREDENTIALS
from export_pipeline_tests.support.requests import SEED_BODY
from export_pipeline_tests.support.service import (
    QUEUED_DAGSTER_YAML,
    ServiceProcess,
    service_environment,
    tenants_yaml,
)

QUOTA = 3
RATE = 4
TENANTS = {
    "acme": {},
    "globex": {},
    "tiny": {"monthly_quota": QUOTA},
    "chatty": {"rate_limit": {"requests": RATE, "per_seconds": 3600}},
}
DAGSTER_STORAGE = """\
storage:
  postgres:
    postgres_db:
      hostname: 127.0.0.1
      port: {port}
      db_name: {database}
      username: {user}
      password: {{env: PGPASSWORD}}
      scheme: postgresql+psycopg2
"""


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, postgres, s3_endpoint, service_bucket, demo_store_path):
    root = tmp_path_factory.mktemp("replicas")
    state, dagster = postgres.new_database("state"), postgres.new_database("dagster")
    keys: dict[str, str] = {}
    (root / "tenants.yaml").write_text(tenants_yaml(TENANTS, keys))
    storage = DAGSTER_STORAGE.format(port=postgres.port, database=dagster, user=postgres.user)
    servers = []
    for name in ("a", "b"):
        # a home each, as on two hosts: only the databases are shared
        env = service_environment(root / name, root / "tenants.yaml", service_bucket,
                                  demo_store_path, s3_endpoint, FAKE_CREDENTIALS,
                                  QUEUED_DAGSTER_YAML + storage)
        # the credentials come from libpq's environment, never the URL
        env.update(EXPORT_SERVICE_STATE=f"postgresql://127.0.0.1:{postgres.port}/{state}",
                   PGUSER=postgres.user, PGPASSWORD="trust-auth-ignores-it",
                   EXPORT_INBOX_SENSOR="stopped")
        servers.append(ServiceProcess(env=env, keys=keys))
    try:
        for server in servers:  # one after the other: Dagster migrates its own schema once
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_an_export_made_through_one_replica_is_seen_and_deleted_through_the_other(replicas):
    a, b = replicas
    with a.client("acme") as on_a, b.client("acme") as on_b, b.client("globex") as stranger:
        created = on_a.post("/v1/exports", json={**SEED_BODY, "name": "made on a"})
        assert created.status_code == 202, created.text
        export_id = created.json()["id"]
        seen = on_b.get(f"/v1/exports/{export_id}")
        assert seen.status_code == 200 and seen.json()["name"] == "made on a"
        assert [e["id"] for e in on_b.get("/v1/exports").json()["exports"]] == [export_id]
        assert stranger.get(f"/v1/exports/{export_id}").status_code == 404
        assert stranger.delete(f"/v1/exports/{export_id}").status_code == 404
        assert on_b.delete(f"/v1/exports/{export_id}").status_code == 204
        assert on_a.get(f"/v1/exports/{export_id}").status_code == 404
        assert on_a.get("/v1/exports").json()["exports"] == []


def test_a_quota_raced_across_both_replicas_admits_exactly_its_number(replicas, dagster_runs):
    calls = 4 * QUOTA
    start, answers = threading.Barrier(calls), [None] * calls

    def post(i: int) -> None:
        with replicas[i % 2].client("tiny") as client:
            start.wait()
            answers[i] = client.post("/v1/exports", json=SEED_BODY)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    created = [r.json()["id"] for r in answers if r.status_code == 202]
    refused = [r for r in answers if r.status_code != 202]
    assert len(created) == QUOTA, [r.status_code for r in answers]
    assert all(r.status_code == 429 and r.json()["reason"] == "quota_exceeded"
               and int(r.headers["Retry-After"]) > 0 for r in refused), [r.text for r in refused]
    for server in replicas:
        with server.client("tiny") as client:
            listed = client.get("/v1/exports").json()["exports"]
        assert sorted(e["id"] for e in listed) == sorted(created)
    assert sorted(dagster_runs("tiny")) == sorted(created)  # no run for a refused call


def test_both_replicas_draw_on_one_rate_limit_bucket(replicas):
    a, b = replicas
    with a.client("chatty") as on_a, b.client("chatty") as on_b:
        answers = [client.get("/v1/exports") for client in (on_a, on_b) * RATE]
    assert [r.status_code for r in answers] == [200] * RATE + [429] * RATE
    assert all(r.json()["reason"] == "rate_limited" and int(r.headers["Retry-After"]) > 0
               for r in answers[RATE:])


@pytest.fixture
def dagster_runs(replicas, monkeypatch):
    """The export ids of a tenant's runs in the shared Dagster instance."""
    import dagster as dg

    monkeypatch.setenv("PGPASSWORD", replicas[0].env["PGPASSWORD"])

    def export_ids(tenant: str) -> list[str]:
        with dg.DagsterInstance.from_config(replicas[0].env["DAGSTER_HOME"]) as instance:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"export_pipeline/tenant": tenant}))
        return [run.tags["export_pipeline/export_id"] for run in runs]

    return export_ids


@pytest.mark.parametrize("location, mentions", [
    ("postgresql://svc:s3cret@127.0.0.1/exports", "EXPORT_SERVICE_STATE: Value error, the URL must not carry a password"),
    ("postgresql://127.0.0.1:s3cret/exports", "EXPORT_SERVICE_STATE: Value error, the port is not a number"),
    ("redis://127.0.0.1/0", "EXPORT_SERVICE_STATE: Value error, a SQLite file path or postgresql://"),
])
def test_the_service_refuses_a_bad_state_url_at_start_up_naming_the_setting(
        tmp_path, s3_endpoint, service_bucket, demo_store_path, location, mentions):
    failed = _serve(tmp_path, s3_endpoint, service_bucket, demo_store_path, location)
    assert failed.returncode != 0 and mentions in failed.stderr, failed.stderr
    assert "s3cret" not in failed.stderr + failed.stdout


def test_the_service_does_not_start_without_its_state_database(
        tmp_path, postgres, s3_endpoint, service_bucket, demo_store_path):
    location = f"postgresql://127.0.0.1:{postgres.port}/no_such_database"
    failed = _serve(tmp_path, s3_endpoint, service_bucket, demo_store_path, location,
                    PGUSER=postgres.user)
    assert failed.returncode != 0
    assert f"cannot start the service: EXPORT_SERVICE_STATE {location}: " in failed.stderr, failed.stderr


def _serve(tmp_path, s3_endpoint, bucket, store, location, **extra):
    import subprocess
    import sys

    from export_pipeline_tests.support.helpers import free_port
    from export_pipeline_tests.support.requests import REPO

    keys: dict[str, str] = {}
    (tmp_path / "tenants.yaml").write_text(tenants_yaml({"acme": {}}, keys))
    env = service_environment(tmp_path / "home", tmp_path / "tenants.yaml", bucket, store,
                              s3_endpoint, FAKE_CREDENTIALS)
    env.update(EXPORT_SERVICE_STATE=location, **extra)
    return subprocess.run(
        [sys.executable, "-m", "export_pipeline", "serve", "--port", str(free_port())],
        env=env, cwd=str(REPO), capture_output=True, text=True, timeout=300,
    )
