"""Property-based tests generated from the service's own OpenAPI document (schemathesis):
every operation, with generated paths, queries and bodies, valid and not, authenticated and
not. No answer is a 5xx and every answer matches the document (status, headers, body)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance


@pytest.fixture(scope="module")
def api_schema(service):
    return schemathesis.openapi.from_url(f"{service.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, service):
    # A request body's whole contract (column bindings, store names, ranges) is more than a
    # JSON schema says; a body the document allows may still be refused with 422 and paths.
    case.call_and_validate(
        headers={"Authorization": f"Bearer {service.keys['fuzz']}"},
        excluded_checks=[positive_data_acceptance],
    )


def test_the_document_names_every_operation(service):
    import httpx

    document = httpx.get(f"{service.url}/openapi.json").json()
    operations = {(path, method) for path, item in document["paths"].items() for method in item}
    assert operations == {("/v1/exports", "post"), ("/v1/exports", "get"),
                          ("/v1/exports/{export_id}", "get"), ("/v1/exports/{export_id}", "delete")}
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_the_root_serves_the_reports_page_or_a_placeholder_without_a_key(service):
    import httpx

    from export_pipeline.service.app import STATIC

    response = httpx.get(f"{service.url}/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = STATIC / "index.html"
    if page.is_file():
        assert response.content == page.read_bytes()
    else:
        assert "/openapi.json" in response.text
