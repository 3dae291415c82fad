"""Notifications wired into Dagster: run-status sensors that tell people an export succeeded
(with a link to its file, signed as the message is sent), failed (with the error) or was
canceled, as the run's notification messages ask.

Sensors, not steps of the job: a notification that cannot be delivered never fails the export.
A failed delivery is retried with backoff and logged on the sensor's tick.
"""

import json
import time
from collections.abc import Callable, Mapping

import dagster as dg

from export_pipeline.notifications.channels import Channels, SmtpSettings, deliver_with_retry
from export_pipeline.notifications.messages import (
    VALUE_ESCAPES,
    Notification,
    Policy,
    render,
    render_title,
)
from export_pipeline.orchestration.resources import ExportStorage
from export_pipeline.orchestration.saved_export_jobs import run_notifications
from export_pipeline.saved_exports.definitions import SavedExport
from export_pipeline.settings import NotificationSettings, resource_field
from export_pipeline.orchestration.run_outcomes import (
    NAME_TAG,
    NOTIFICATION_TAG,
    WINDOW_TAG,
    canceled_errors,
    error_text,
    export_response,
    failure_errors,
)


class Notifier(dg.ConfigurableResource):
    """Delivery settings; secrets (SMTP password, webhook URLs, bot token) come from the
    environment through ``EnvVar``, never from run config."""

    smtp_host: str | None = resource_field(NotificationSettings, "smtp_host")
    smtp_port: int = resource_field(NotificationSettings, "smtp_port")
    smtp_username: str | None = resource_field(NotificationSettings, "smtp_username")
    smtp_password: str | None = resource_field(NotificationSettings, "smtp_password")
    smtp_sender: str = resource_field(NotificationSettings, "smtp_from")
    smtp_security: str = resource_field(NotificationSettings, "smtp_security")
    slack_webhook_url: str | None = resource_field(NotificationSettings, "slack_webhook_url")
    discord_webhook_url: str | None = resource_field(NotificationSettings, "discord_webhook_url")
    telegram_bot_token: str | None = resource_field(NotificationSettings, "telegram_bot_token")
    telegram_api_url: str = resource_field(NotificationSettings, "telegram_api_url")
    attempts: int = resource_field(NotificationSettings, "notify_attempts")
    backoff_seconds: float = resource_field(NotificationSettings, "notify_backoff_seconds")

    def channels(self) -> Channels:
        smtp = None
        if self.smtp_host:
            smtp = SmtpSettings(
                host=self.smtp_host, port=self.smtp_port, username=self.smtp_username,
                password=self.smtp_password, sender=self.smtp_sender, security=self.smtp_security,
            )
        return Channels(
            smtp=smtp, slack_webhook_url=self.slack_webhook_url,
            discord_webhook_url=self.discord_webhook_url,
            telegram_bot_token=self.telegram_bot_token, telegram_api_url=self.telegram_api_url,
        )


def _values(run: dg.DagsterRun, status: str, tags: Mapping[str, str]) -> dict:
    return {
        "name": tags.get(NAME_TAG, run.job_name),
        "window": tags.get(WINDOW_TAG),
        "runId": run.run_id,
        "partition": tags.get("dagster/partition"),
        "status": status,
    }


# medium -> monotonic time until which it is treated as down. A run-status sensor handles every
# run that finished since its last tick in one evaluation: with a medium down, retrying each
# message with backoff could outlast the sensor's time limit, and a timed-out tick is evaluated
# again, sending the messages that did go out twice. So after a medium has failed all its
# attempts, its next messages get one try each for a while.
_down_until: dict[str, float] = {}
DOWN_SECONDS = 300.0


def notify(
    log, notifier: Notifier, run: dg.DagsterRun, policy: Policy, values: dict,
    tags: Mapping[str, str] | None = None,
) -> int:
    """Send the run's messages for ``policy`` (from ``tags``, the run's own unless given);
    returns how many were delivered. Never raises."""
    tags = run.tags if tags is None else tags
    if NOTIFICATION_TAG not in tags:
        return 0
    try:
        notification = Notification.model_validate(json.loads(tags[NOTIFICATION_TAG]))
    except ValueError as error:
        log.error(f"run {run.run_id}: unreadable notification tag: {error}")
        return 0
    channels = notifier.channels()
    delivered = 0
    for message in notification.for_policy(policy):
        escape = VALUE_ESCAPES.get(message.medium, str)
        title = render_title(message.title, values, escape)
        text = render(message.text, values, escape)
        where = f"{message.medium.value}" + (f" {message.target}" if message.target else "")
        medium = message.medium.value
        attempts = 1 if _down_until.get(medium, 0.0) > time.monotonic() else notifier.attempts
        try:
            send = channels.sender_for(medium, message.target, title, text)
            deliver_with_retry(
                send, attempts=attempts, backoff_seconds=notifier.backoff_seconds,
                on_retry=lambda attempt, error: log.warning(
                    f"run {run.run_id}: {where} delivery attempt {attempt} failed: {error}; retrying"
                ),
            )
        except Exception as error:
            log.error(f"run {run.run_id}: {policy.value} notification to {where} not delivered: {error}")
            _down_until[medium] = time.monotonic() + DOWN_SECONDS
            continue
        _down_until.pop(medium, None)
        delivered += 1
        log.info(f"run {run.run_id}: {policy.value} notification sent to {where}")
    return delivered


def build_notification_sensors(
    minimum_interval_seconds: int, saved_exports: list[SavedExport] = ()
) -> list[dg.SensorDefinition]:
    """``saved_exports``: whose messages a run from their asset page gets, if it has no tags."""
    running = dg.DefaultSensorStatus.RUNNING

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS, name="export_success_notifications",
        minimum_interval_seconds=minimum_interval_seconds, default_status=running,
        description="Send an export's onSuccess messages, with a link to its file signed as they go out.",
    )
    def export_success_notifications(
        context: dg.RunStatusSensorContext, notifier: Notifier, export_storage: ExportStorage
    ):
        run = context.dagster_run
        for tags, asset_key in run_notifications(saved_exports, run):
            if NOTIFICATION_TAG not in tags:
                continue
            values = _values(run, "complete", tags)
            values.update(export_response(
                context.instance, run.run_id, asset_key, sign=export_storage.signed_url
            ) or {})
            notify(context.log, notifier, run, Policy.on_success, values, tags)

    def send_failure(
        context: dg.RunStatusSensorContext, notifier: Notifier, status: str, error: Callable[[], str]
    ) -> None:
        """``error`` is read only for a run with messages to send."""
        run = context.dagster_run
        for tags, _ in run_notifications(saved_exports, run):
            if NOTIFICATION_TAG in tags:
                values = {**_values(run, status, tags), "error": error()}
                notify(context.log, notifier, run, Policy.on_failure, values, tags)

    @dg.run_failure_sensor(
        name="export_failure_notifications",
        minimum_interval_seconds=minimum_interval_seconds, default_status=running,
        description="Send an export's onFailure messages, with the error.",
    )
    def export_failure_notifications(context: dg.RunFailureSensorContext, notifier: Notifier):
        send_failure(context, notifier, "failed", lambda: error_text(
            failure_errors(context.get_step_failure_events(), context.failure_event)
        ))

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.CANCELED, name="export_canceled_notifications",
        minimum_interval_seconds=minimum_interval_seconds, default_status=running,
        description="Send an export's onFailure messages when its run is canceled.",
    )
    def export_canceled_notifications(context: dg.RunStatusSensorContext, notifier: Notifier):
        send_failure(context, notifier, "canceled", lambda: error_text(canceled_errors()))

    return [export_success_notifications, export_failure_notifications, export_canceled_notifications]
