"""Which entities, entity types and formats a tenant may export: every metric request must
stay inside the tenant's ``customer_scopes``, and an omitted ``entities`` (all entities) or
``entityType`` (all types) is outside a scope that lists them."""

from __future__ import annotations

from export_pipeline.contract.models import ExportRequest
from export_pipeline.contract.problems import Problem
from export_pipeline.service.tenants import Tenant


def scope_problems(request: ExportRequest, tenant: Tenant, prefix: str = "") -> list[Problem]:
    scopes = tenant.customer_scopes
    problems: list[Problem] = []
    for i, metric_request in enumerate(request.metric_requests):
        path = f"{prefix}metricRequests[{i}]"
        if scopes.entities is not None:
            allowed = set(scopes.entities)
            if metric_request.entities is None:
                problems.append(Problem(f"{path}.entities", "required: this key may export only named entities"))
            for j, entity in enumerate(metric_request.entities or []):
                if entity not in allowed:
                    problems.append(Problem(f"{path}.entities[{j}]", f"{entity!r} is outside this key's scope"))
        if scopes.entity_types is not None:
            if metric_request.entity_type is None:
                problems.append(Problem(f"{path}.entityType", "required: this key may export only some entity types"))
            elif metric_request.entity_type not in scopes.entity_types:
                problems.append(Problem(
                    f"{path}.entityType", f"{metric_request.entity_type!r} is outside this key's scope"
                ))
    if tenant.formats is not None and request.format.extension not in tenant.formats:
        allowed = ", ".join(f.value for f in tenant.formats)
        problems.append(Problem(
            f"{prefix}format.extension",
            f"{request.format.extension.value!r} is not in this subscription (allowed: {allowed})",
        ))
    return problems
