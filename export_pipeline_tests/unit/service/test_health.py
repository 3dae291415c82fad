"""The health endpoint the load balancer and the Kubernetes probes call: it answers without a
key, touches neither the service's state nor its runs, and stays out of the API's document."""

from __future__ import annotations

from fastapi.testclient import TestClient

from export_pipeline.service.app import create_app


class Untouchable:
    def __getattr__(self, name):
        raise AssertionError(f"the health endpoint used the service ({name})")


def test_healthz_answers_without_a_key_and_without_the_service():
    with TestClient(create_app(Untouchable(), 1024)) as client:
        response = client.get("/healthz")
        assert response.status_code == 200 and response.json() == {"status": "ok"}
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "/healthz" not in client.get("/openapi.json").json()["paths"]
