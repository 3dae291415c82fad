from __future__ import annotations

import copy

from export_pipeline.contract.validation import validate_document
from export_pipeline.service.scopes import scope_problems
from export_pipeline.service.tenants import Tenant
from export_pipeline_tests.support.requests import SEED_BODY

ENTITY = SEED_BODY["metricRequests"][0]["entities"][0]


def _request(**changes):
    body = copy.deepcopy(SEED_BODY)
    body["metricRequests"][0].update(changes)
    for key, value in list(body["metricRequests"][0].items()):
        if value is None:
            del body["metricRequests"][0][key]
    return validate_document(body).request


def test_an_unscoped_tenant_may_export_anything():
    assert scope_problems(_request(entities=None, entityType=None), Tenant(name="a")) == []


def test_each_entity_outside_the_scope_is_named_and_all_entities_is_outside_it():
    tenant = Tenant(name="a", customer_scopes={"entities": [ENTITY]})
    assert scope_problems(_request(), tenant) == []
    problems = scope_problems(_request(entities=[ENTITY, "x", "y"]), tenant)
    assert [p.path for p in problems] == ["metricRequests[0].entities[1]", "metricRequests[0].entities[2]"]
    assert [p.path for p in scope_problems(_request(entities=None), tenant)] == ["metricRequests[0].entities"]


def test_entity_types_and_formats_and_the_envelope_prefix():
    tenant = Tenant(name="a", customer_scopes={"entity_types": ["zone"]}, formats=["pdf"])
    problems = scope_problems(_request(), tenant, "data.body.")
    assert [p.path for p in problems] == ["data.body.metricRequests[0].entityType", "data.body.format.extension"]
    assert [p.path for p in scope_problems(_request(entityType=None), tenant)][0] == "metricRequests[0].entityType"
