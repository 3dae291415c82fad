"""The delivery ops: after the export file is in our bucket, send it to each destination.

``plan_deliveries`` fans out one ``deliver_export`` per destination of the request and checks
up front, without connecting, what cannot work (credentials that do not unseal, a refused
host, a missing saved key), so a doomed delivery is reported at the start of the run. ``deliver_export`` streams the
file from our bucket to the far side: several destinations get the same computed file, and a
failed delivery is retried (``RetryPolicy``) or re-executed without recomputing the data.
Transient errors are retried with backoff; permanent ones fail at once. Failure messages go
through ``_reason`` so no credential reaches the event log, whatever a library put in them.
"""

from dataclasses import dataclass

import dagster as dg

from export_pipeline.planning import plan as planning
from export_pipeline.publishing.publish import ExportResult
from export_pipeline.destinations.base import (
    PermanentDeliveryError,
    TransientDeliveryError,
    Upload,
)
from export_pipeline.destinations.factory import open_destination, secret_texts
from export_pipeline.destinations.sealing import mask_secrets
from export_pipeline.orchestration.resources import DestinationsResource, ExportStorage
from export_pipeline.contract.models import DestinationSpec, DestinationType

DELIVERY_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


@dataclass(frozen=True)
class DeliveryTask:
    index: int
    where: str
    spec: DestinationSpec

    @property
    def key(self) -> str:
        return f"destination{self.index}_{self.spec.type.value}"


def _tasks(plan: planning.ExportPlan) -> list[DeliveryTask]:
    request = plan.request
    where = "destination" if request.destination else "destinations"
    specs = [request.destination] if request.destination else list(request.destinations or [])
    return [
        DeliveryTask(i, where if request.destination else f"{where}[{i}]", spec)
        for i, spec in enumerate(specs)
        if spec.type is not DestinationType.aws
    ]


def _reason(task: DeliveryTask, message: str, secrets: list[str]) -> str:
    """A failure message naming the destination, with any credential in it masked."""
    message = mask_secrets(message, secrets)
    return message if message.startswith(task.where) else f"{task.where}: {message}"


@dg.op(
    out=dg.DynamicOut(DeliveryTask, io_manager_key="delivery_io_manager"),
    description="One delivery per destination of the request, checked without connecting.",
)
def plan_deliveries(
    context: dg.OpExecutionContext, plan: planning.ExportPlan, destinations: DestinationsResource
):
    settings = destinations.settings()
    accepted, refused = [], []
    for task in _tasks(plan):
        secrets = secret_texts(task.spec, destinations.sealer())
        try:
            destination = open_destination(
                task.spec, "preflight.csv", settings, destinations.sealer(), task.where
            )
            if task.spec.server:
                settings.host_policy.resolve(task.spec.server, getattr(destination, "port", 0))
        except PermanentDeliveryError as error:
            # every one is named, not the first, at its path in the document as submitted
            refused.append(plan.path_prefix + _reason(task, str(error), secrets))
            continue
        except TransientDeliveryError as error:
            context.log.warning(f"{_reason(task, str(error), secrets)} (will retry on delivery)")
        context.log.info(f"{task.where}: will deliver to {destination.describe()}")
        accepted.append(task)
    if refused:
        raise dg.Failure(
            description="\n".join(refused), metadata={"problems": refused}, allow_retries=False
        )
    for task in accepted:
        yield dg.DynamicOutput(task, mapping_key=task.key)


@dg.op(
    retry_policy=DELIVERY_RETRY_POLICY,
    description="Stream the export file from our bucket to one destination, atomically.",
)
def deliver_export(
    context: dg.OpExecutionContext,
    task: DeliveryTask,
    export: ExportResult,
    export_storage: ExportStorage,
    destinations: DestinationsResource,
) -> dict:
    secrets = secret_texts(task.spec, destinations.sealer())
    file_name = export.file_name_at_destination
    try:
        destination = open_destination(
            task.spec, file_name, destinations.settings(), destinations.sealer(), task.where
        )
        source = export_storage.get_client().get_object(Bucket=export.bucket, Key=export.key)
        body = source["Body"]
        try:
            receipt = destination.deliver(Upload(
                stream=body,
                size=source["ContentLength"],
                file_name=file_name,
                content_type=source.get("ContentType") or "application/octet-stream",
                attempt_tag=f"{context.run_id[:8]}-{task.index}",
            ))
        finally:
            body.close()
    except PermanentDeliveryError as error:
        raise dg.Failure(
            description=_reason(task, str(error), secrets), allow_retries=False
        ) from None
    except Exception as error:  # transient, or unknown: retried by the policy
        reason = str(error) if isinstance(error, TransientDeliveryError) else (
            f"{type(error).__name__}: {error}"
        )
        context.log.warning(
            f"attempt {context.retry_number + 1} failed: {_reason(task, reason, secrets)}"
        )
        raise dg.Failure(description=_reason(task, reason, secrets)) from None
    receipt_dict = receipt.to_dict()
    context.log.info(
        f"{task.where}: delivered {receipt.bytes} bytes to {receipt.remote_path}"
    )
    context.add_output_metadata({
        "destination": dg.MetadataValue.json(receipt.destination),
        "remote_path": receipt.remote_path,
        "bytes": receipt.bytes,
        **{k: v for k, v in receipt.remote.items() if v is not None},
        "attempt": context.retry_number + 1,
    })
    return {"where": task.where, **receipt_dict}
