"""Which entities, entity types and formats a tenant may export, and which of the
deployment's own named credentials and definitions its requests may use.

Every metric request must stay inside the tenant's ``customer_scopes``, and an omitted
``entities`` (all entities) or ``entityType`` (all types) is outside a scope that lists them.
A request may name an SFTP ``savedKey``, deliver to a ``gcs`` bucket (with the service's own
Google identity), run a saved export or notify through a medium other than email only when
the tenant's entry lists that key, bucket, saved export or medium: omitted, none is allowed
(email only). An email message also needs its target in the entry's ``email_recipients``
(omitted: nobody), since it goes out through the operator's SMTP server, and a Telegram
message its chat in ``telegram_chats`` (omitted: none), since the operator's bot may sit in
other tenants' chats. A saved export the
tenant may run brings its own deliveries and notification, which the operator defined, so only
its name is checked."""

from __future__ import annotations

from export_pipeline.contract.models import ExportRequest
from export_pipeline.contract.problems import Problem
from export_pipeline.notifications.messages import Medium, Notification, telegram_chat
from export_pipeline.notifications.recipients import recipient_granted
from export_pipeline.service.tenants import Tenant


def saved_export_problems(name: object, tenant: Tenant) -> list[Problem]:
    """A saved export the tenant is not granted, answered before it is looked up, so a tenant
    cannot tell the names of saved exports it may not run from names that do not exist."""
    if isinstance(name, str) and name in tenant.saved_exports:
        return []
    return [Problem("savedExport", f"{name!r} is outside this key's scope")]


def scope_problems(
    request: ExportRequest,
    tenant: Tenant,
    prefix: str = "",
    saved_export: str | None = None,
    notification: Notification | None = None,
) -> list[Problem]:
    """What in ``request`` is outside ``tenant``'s scope, each with its JSON path.
    ``saved_export``: the saved export's name when the request runs one (``request`` is then
    its request for the window, whose deliveries and notification the operator wrote, and the
    grant itself is ``saved_export_problems``); ``notification``: the notification sent
    beside the request."""
    problems = _export_problems(request, tenant, prefix)
    if saved_export is not None:
        return problems
    problems += _destination_problems(request, tenant, prefix)
    if notification is not None:
        problems += _notification_problems(notification, tenant)
    return problems


def _notification_problems(notification: Notification, tenant: Tenant) -> list[Problem]:
    """A medium the tenant is not granted, or else an email or Telegram target it is not
    granted (a medium it may not use at all is named once, not again for its target)."""
    problems = []
    for i, message in enumerate(notification.messages):
        path = f"notification.messages[{i}]"
        if message.medium not in tenant.notification_media:
            problems.append(Problem(f"{path}.medium", f"{message.medium.value!r} is outside this key's scope"))
        elif message.medium is Medium.email and not recipient_granted(
                message.target or "", tenant.email_recipients):
            problems.append(Problem(f"{path}.target", f"{message.target!r} is outside this key's scope"))
        elif message.medium is Medium.telegram and (
                telegram_chat(message.target or "") not in tenant.telegram_chats):
            problems.append(Problem(f"{path}.target", f"{message.target!r} is outside this key's scope"))
    return problems


def _destination_problems(request: ExportRequest, tenant: Tenant, prefix: str) -> list[Problem]:
    if request.destination is not None:
        found = [(f"{prefix}destination", request.destination)]
    else:
        found = [(f"{prefix}destinations[{i}]", d) for i, d in enumerate(request.destinations or [])]
    problems = []
    for path, destination in found:
        if destination.saved_key is not None and destination.saved_key not in tenant.saved_keys:
            problems.append(Problem(
                f"{path}.savedKey", f"{destination.saved_key!r} is outside this key's scope"
            ))
        if destination.gcs_bucket is not None and destination.gcs_bucket not in tenant.gcs_buckets:
            problems.append(Problem(
                f"{path}.gcs_bucket", f"{destination.gcs_bucket!r} is outside this key's scope"
            ))
    return problems


def _export_problems(request: ExportRequest, tenant: Tenant, prefix: str) -> list[Problem]:
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
