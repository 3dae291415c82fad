"""``export-pipeline``: run, validate and demo exports from the command line.

Exit status: 0 done; 2 invalid request (every problem on stderr, nothing run or written);
1 the export failed (the reason on stderr); 130 and 143 stopped by SIGINT and SIGTERM.
``run`` prints one JSON object as the last line of stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
from importlib import resources
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports when a command's reader went away
DEMO_BUCKET = "export-pipeline-demo"


class ExportFailed(RuntimeError):
    pass


def _metric_source():
    from export_pipeline.settings import MetricStoreSettings
    from export_pipeline.store.configured import metric_source

    return metric_source(MetricStoreSettings.load())


def _validate(document: Any, source: Any = None):
    """Validate against the configured store's schema; raises InvalidRequest or MetricSourceError."""
    from export_pipeline.contract.validation import validate_document

    return validate_document(document, (source or _metric_source()).schema())


# The dagster.yaml for one machine: Dagster's storage defaults, runs launched promptly.
INSTANCE_CONFIG = (
    resources.files("export_pipeline.orchestration").joinpath("local_instance.yaml").read_text("utf-8")
)


def _instance():
    from export_pipeline.orchestration.cli_instance import cli_instance

    home = os.environ.get("DAGSTER_HOME")
    if home:
        os.makedirs(home, exist_ok=True)
        _ensure_instance_config(home)
    return cli_instance(home)


def _ensure_instance_config(home: str) -> None:
    """Dagster warns on every start that a ``DAGSTER_HOME`` without ``dagster.yaml`` means
    its defaults, and asks for the file: write it once, with the local defaults."""
    with contextlib.suppress(OSError):  # there already, or a read-only home
        with open(os.path.join(home, "dagster.yaml"), "x", encoding="utf-8") as config:
            config.write(INSTANCE_CONFIG)


def prepare_run(document: Any, source=None):
    """Validate and plan a sealed ``document`` once, for a run id chosen now, and start its
    store reads (they run while Dagster starts); raises InvalidRequest or MetricSourceError."""
    import uuid

    from export_pipeline.planning.prepared import prepare_export

    return prepare_export(
        document, source or _metric_source(), run_id=str(uuid.uuid4()), read_ahead=True
    )


def run_export(document: Any, prepared) -> dict[str, Any]:
    """Run the export job on ``document`` (sealed) as ``prepared`` (``prepare_run``) planned it;
    the export response plus run id and counts."""
    _export_bucket()
    import dagster as dg

    from export_pipeline import interrupts
    from export_pipeline.orchestration.cli_cancel import cancel_when_stopped
    from export_pipeline.orchestration.cli_logging import cli_console_logger
    from export_pipeline.orchestration.environment import export_resources
    from export_pipeline.orchestration.jobs import export_job
    from export_pipeline.orchestration.run_outcomes import run_failure_reason, step_failure_reason

    # The export job and its resources alone: the code location's sensors, schedules and
    # saved exports are not needed to run one export, and cost start-up. The run config still
    # carries the request, so the run's record shows it and a re-execution validates it.
    resources = {**export_resources(), "prepared_export": prepared}
    job = dg.Definitions(
        jobs=[export_job], resources=resources, loggers={"console": cli_console_logger},
    ).resolve_job_def("export_job")
    with _instance() as instance, _long_lived_objects_frozen(), _progress_shown(
        instance, prepared.run_id
    ):
        cancel_when_stopped(instance, prepared.run_id)
        interrupts.checkpoint()  # a signal whose handler's raise was lost during start-up
        result = job.execute_in_process(
            run_config=document, instance=instance, raise_on_error=False, run_id=prepared.run_id
        )
        if not result.success:
            reasons = [
                step_failure_reason(f.step_failure_data)
                for f in result.get_step_failure_events()
            ]
            raise ExportFailed(
                f"run {result.run_id} failed: "
                + ("\n".join(reasons) or run_failure_reason(result.get_run_failure_event())
                   or "see the run's event log")
            )
        export = result.output_for_node("materialize_export")
        deliveries = None
        if "deliver_export" in {e.node_name for e in result.get_step_success_events()
                                if e.node_name}:
            receipts = result.output_for_node("deliver_export")
            deliveries = [receipts[k] for k in sorted(receipts)]
        return export.to_response(run_id=result.run_id, deliveries=deliveries)


@contextlib.contextmanager
def _long_lived_objects_frozen():
    """Collect garbage during the run, but not among the objects the imports made (Dagster's
    are most of them): they live as long as the process, yet every full collection would walk
    them all.

    The command line turns the collector off while modules load (``console_main``); start-up
    is over here, so it is on from here on, whatever follows the run (``demo --serve`` keeps
    serving)."""
    gc.freeze()
    gc.enable()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.contextmanager
def _progress_shown(instance: Any, run_id: str):
    """The run's store reads done of total, and its rows once combined, on stderr while it
    runs (read from the instance's event log, as the export service reads them): a bar on a
    terminal, a line per change otherwise."""
    import threading

    from export_pipeline.orchestration.run_outcomes import run_progress
    from export_pipeline.progress import ProgressStream

    stream = ProgressStream(sys.stderr, sys.stderr.isatty())
    stop = threading.Event()

    def watch() -> None:
        # Each look is a query of the instance's event log, which competes with the run
        # for the interpreter; twice a second is as often as a reader looks.
        while not stop.wait(0.5):
            with contextlib.suppress(Exception):  # the run may not exist yet
                stream.show(**_progress_args(run_progress(instance, run_id)))

    watcher = threading.Thread(target=watch, daemon=True)
    original, sys.stderr = sys.stderr, stream
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        with contextlib.suppress(Exception):
            stream.show(**_progress_args(run_progress(instance, run_id)))
        stream.finish()
        sys.stderr = original


def _progress_args(progress: dict) -> dict:
    return {"done": progress["fetches_done"], "total": progress["fetches_total"], "rows": progress["rows"]}


def _sealed(document: Any) -> Any:
    """The request with its inline credentials sealed, so they never enter run config.

    Without ``EXPORT_SEALING_KEY`` a key is made for this process alone: the run works, but
    re-executing it later (from the UI) cannot unseal its credentials.
    """
    from export_pipeline.destinations.sealing import (
        generate_key,
        plaintext_secret_paths,
        seal_for_run_config,
    )
    from export_pipeline.settings import DeliverySettings

    keys = DeliverySettings.load().sealing_keys()
    if plaintext_secret_paths(document) and not keys:
        keys = generate_key()
        os.environ["EXPORT_SEALING_KEY"] = keys  # the run's DestinationsResource unseals with it
        _say("EXPORT_SEALING_KEY is not set: sealed the request's credentials with a key "
             "made for this run only")
    return seal_for_run_config(document, keys)


def _read(path: str) -> Any:
    from export_pipeline.contract.documents import read_document

    return read_document(path)


def _run(document: Any) -> dict[str, Any]:
    """Seal, validate and plan once, then run: what ``run`` and ``demo`` do."""
    document = _sealed(document)
    source = _metric_source()
    try:
        prepared = prepare_run(document, source)
        try:
            return run_export(document, prepared)
        finally:
            prepared.close()
    finally:
        # A SQL source's connection: closing it cancels a read-ahead still running in the
        # engine when the run failed or was interrupted (Ctrl-C).
        getattr(source, "close", lambda: None)()


def _cmd_run(args: argparse.Namespace) -> int:
    response = _run(_read(args.request))
    print(json.dumps(response), flush=True)  # a caller may act on it before exit
    return EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
    from export_pipeline.destinations.factory import describe_spec
    from export_pipeline.planning.prepared import prepare_export

    prepared = prepare_export(_read(args.request), _metric_source(), run_id="<run id>")
    described = prepared.plan.describe()
    described["deliveries"] = [describe_spec(d) for d in prepared.validated.request.deliveries()]
    print(json.dumps(described, indent=2))
    return EXIT_OK


def _cmd_seal(args: argparse.Namespace) -> int:
    from export_pipeline.destinations.sealing import Sealer, generate_key, seal_document
    from export_pipeline.settings import DeliverySettings

    if args.new_key:
        print(generate_key())
        return EXIT_OK
    if not args.request:
        raise ExportFailed("give a request file to seal (or --new-key)")
    key = DeliverySettings.load().sealing_keys()
    if not key:
        raise ExportFailed(
            "EXPORT_SEALING_KEY is not set: seal with the key of the deployment that will run "
            "the request (make one with `export-pipeline seal --new-key`)"
        )
    document = _read(args.request)
    _validate(document)
    print(json.dumps(seal_document(document, Sealer(key)), indent=2))
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    import urllib.request

    from export_pipeline.demo.store import build_demo_store
    from export_pipeline.demo.local_s3 import local_s3_server
    from export_pipeline.settings import BucketSettings, MetricStoreSettings

    with contextlib.ExitStack() as stack:
        own_server = not (os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))
        if own_server:
            endpoint = stack.enter_context(local_s3_server(port=args.port))
            # A throwaway local server: fake credentials, so real ones never leave the machine.
            os.environ.update(
                AWS_ENDPOINT_URL_S3=endpoint,
                AWS_ACCESS_KEY_ID="demo",
                AWS_SECRET_ACCESS_KEY="demo",
                AWS_DEFAULT_REGION=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            )
            os.environ.pop("AWS_SESSION_TOKEN", None)
            os.environ.pop("AWS_PROFILE", None)
            _say(f"started a local S3-compatible server at {endpoint}")
        bucket = BucketSettings.load().bucket or DEMO_BUCKET
        store = MetricStoreSettings.load().parquet_path
        # the export job reads its settings from the environment, as in any other run
        os.environ.update(EXPORT_BUCKET=bucket, EXPORT_METRICS_PATH=store)
        _ensure_bucket(bucket)
        if args.rebuild or not any(os.scandir(store) if os.path.isdir(store) else []):
            _say(f"building the demo metric store in {store}")
            build_demo_store(store)
        document = json.loads(
            resources.files("export_pipeline").joinpath("examples/seed_000_request.json").read_text()
        )
        response = _run(document)
        with urllib.request.urlopen(response["signedUrl"], timeout=30) as download:
            lines = download.read().decode("utf-8").splitlines()
        print(f"Exported {response['rows']} rows ({response['bytes']} bytes) "
              f"to s3://{response['bucket']}/{response['key']}")
        print("First lines, downloaded through the signed URL:")
        for line in lines[: args.lines]:
            print(f"  {line}")
        _show_url(response["signedUrl"], own_server, args.serve)
    return EXIT_OK


def _show_url(url: str, own_server: bool, serve: bool) -> None:
    """A link shown to a person must work when shown: the demo's own server stops with the
    command, so its link is shown only while the server keeps serving (``--serve``)."""
    import time

    from export_pipeline.settings import BucketSettings

    ttl = BucketSettings.load().url_ttl
    if own_server and not serve:
        print("\nNo download link: the local S3 server stops with this command. "
              "`export-pipeline demo --serve` keeps it running and prints a link that works "
              "until Ctrl-C.")
        return
    if not own_server:
        print(f"Signed URL (expires in {ttl} s):")
        print(url)
        return
    print(f"Signed URL (works while this command serves, for {ttl} s at most):")
    print(url)
    print("\nTo use the local S3 server from another shell (the Dagster UI, export-pipeline run):")
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_DEFAULT_REGION", "EXPORT_BUCKET", "EXPORT_METRICS_PATH"):
        print(f"  export {name}={os.environ[name]}")
    print(f"\nServing at {os.environ['AWS_ENDPOINT_URL_S3']} until Ctrl-C.", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)
    _say("stopped the local S3 server; its files and links are gone")


def _export_folder() -> tuple[Any, str, str]:
    """The export bucket's client, name and prefix, as a run sees them."""
    import boto3

    from export_pipeline.settings import BucketSettings

    return boto3.client("s3"), _export_bucket(), BucketSettings.load().prefix


def _export_bucket() -> str:
    from export_pipeline.settings import BucketSettings

    bucket = BucketSettings.load().bucket
    if not bucket:
        raise ExportFailed("EXPORT_BUCKET is not set: name the bucket exports are written to")
    return bucket


def _cmd_cleanup_lifecycle(args: argparse.Namespace) -> int:
    from export_pipeline.publishing import cleanup
    from export_pipeline.settings import CleanupSettings

    days = args.days if args.days is not None else CleanupSettings.load().abort_upload_days
    client, bucket, prefix = _export_folder()
    rules = cleanup.put_abort_rule(client, bucket, prefix, days)
    print(f"s3://{bucket}: lifecycle rule {cleanup.rule_id(prefix)} aborts uploads under "
          f"'{cleanup.folder_prefix(prefix)}' {days} day(s) after they begin "
          f"({len(rules) - 1} other rule(s) kept)")
    return EXIT_OK


def _cmd_cleanup_retention(args: argparse.Namespace) -> int:
    from datetime import datetime, timedelta, timezone

    from export_pipeline.publishing import cleanup
    from export_pipeline.settings import RetentionSettings

    days = args.days if args.days is not None else RetentionSettings.load().retention_days
    client, bucket, prefix = _export_folder()
    if args.sweep:
        deleted = cleanup.delete_expired_exports(
            client, bucket, prefix, timedelta(days=days), datetime.now(timezone.utc)
        )
        for key in deleted:
            print(f"deleted s3://{bucket}/{key}")
        print(f"{len(deleted)} export file(s) under s3://{bucket}/{cleanup.folder_prefix(prefix)} "
              f"older than {days} day(s) deleted")
        return EXIT_OK
    rules = cleanup.put_retention_rule(client, bucket, prefix, days)
    print(f"s3://{bucket}: lifecycle rule {cleanup.rule_id(prefix, cleanup.RETENTION_RULE_ID)} "
          f"deletes export files under '{cleanup.folder_prefix(prefix)}' {days} day(s) after "
          f"they are written ({len(rules) - 1} other rule(s) kept)")
    return EXIT_OK


def _cmd_cleanup_uploads(args: argparse.Namespace) -> int:
    from datetime import datetime, timedelta, timezone

    from export_pipeline.publishing import cleanup
    from export_pipeline.settings import CleanupSettings

    hours = args.older_than_hours
    if hours is None:
        hours = CleanupSettings.load().stale_upload_hours
    client, bucket, prefix = _export_folder()
    aborted = cleanup.abort_stale_uploads(
        client, bucket, prefix, timedelta(hours=hours), datetime.now(timezone.utc)
    )
    for upload in aborted:
        print(f"aborted s3://{bucket}/{upload.key} (begun {upload.initiated.isoformat()})")
    print(f"{len(aborted)} upload(s) under s3://{bucket}/{cleanup.folder_prefix(prefix)} "
          f"begun more than {hours:g} h ago aborted")
    return EXIT_OK


def _cmd_instance_config(args: argparse.Namespace) -> int:
    """Write the deployment's ``dagster.yaml`` from its template (without one, the local
    defaults the CLI writes into a fresh ``DAGSTER_HOME``), checked against Dagster's own
    instance schema first, so a bad value stops here rather than every Dagster process."""
    import tempfile
    from pathlib import Path

    from dagster._core.instance.config import dagster_instance_config

    from export_pipeline.deployment import combine_instance_configs, render_instance_config
    from export_pipeline.settings import DeploymentSettings

    settings = DeploymentSettings.load()
    templates = [Path(template).read_text() for template in args.template] or [INSTANCE_CONFIG]
    text = combine_instance_configs(
        [render_instance_config(template, settings) for template in templates])
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "dagster.yaml").write_text(text)
        dagster_instance_config(folder)
    if args.output == "-":
        sys.stdout.write(text)
        return EXIT_OK
    output = Path(args.output or Path(os.environ.get("DAGSTER_HOME") or ".", "dagster.yaml"))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(f"wrote {output}")
    return EXIT_OK


def _at_least(minimum: int, kind: type = float):
    """An argparse type: a number of ``kind``, ``minimum`` or more."""

    def parse(text: str):
        value = kind(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, not {text}")
        return value

    return parse


def _ensure_bucket(name: str) -> None:
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client("s3")
    try:
        client.head_bucket(Bucket=name)
    except ClientError:
        client.create_bucket(Bucket=name)
        _say(f"created bucket {name}")


def _cmd_serve(args: argparse.Namespace) -> int:
    """The export service API in this process, its runs in the ``DAGSTER_HOME`` instance."""
    import dagster as dg
    import uvicorn

    from export_pipeline.orchestration.service_runs import build_export_service
    from export_pipeline.service.app import create_app
    from export_pipeline.settings import get_settings

    settings = get_settings()
    if not settings.service.tenants_file or not os.path.isfile(settings.service.tenants_file):
        raise ExportFailed("EXPORT_TENANTS_FILE is not set or not a file: name the tenants file "
                           "(see README)")
    if not os.environ.get("DAGSTER_HOME"):
        raise ExportFailed("DAGSTER_HOME is not set: the service runs exports in that instance")
    if not settings.bucket.bucket:
        raise ExportFailed("EXPORT_BUCKET is not set: name the bucket exports are written to")
    from export_pipeline.contract.problems import InvalidRequest
    from export_pipeline.publishing.preflight import StorageUnavailable

    gc.enable()
    with dg.DagsterInstance.get() as instance:
        from export_pipeline.service.state import StateError

        try:
            service, close = build_export_service(settings, instance)
        except (InvalidRequest, OSError, StateError, StorageUnavailable) as error:
            raise ExportFailed(f"cannot start the service: {error}") from None
        try:
            uvicorn.run(create_app(service, settings.service.max_body_bytes), host=args.host,
                        port=args.port, log_level="info")
        finally:
            close()
    return EXIT_OK


def _cmd_keys(args: argparse.Namespace) -> int:
    import re

    from export_pipeline.service.tenants import TENANT_NAME_PATTERN, key_entry, new_key

    if not re.match(TENANT_NAME_PATTERN, args.tenant):
        raise ExportFailed("--tenant: lower-case letters, digits and '-', as in the tenants file")
    if not 1 <= len(args.name) <= 100:
        raise ExportFailed("--name: 1 to 100 characters")
    key = new_key()
    print(f"API key for tenant {args.tenant} (shown once, store it now):\n  {key}")
    print(f"Add under the tenant's keys in EXPORT_TENANTS_FILE:\n  {key_entry(key, args.name)}")
    return EXIT_OK


def _cmd_service_state_copy(args: argparse.Namespace) -> int:
    """Copy the export service's state to another database; the service must be stopped, so
    no record is written to the source after the copy read it."""
    from export_pipeline.service.state_copy import CopyRefused, copy_state

    try:
        done = copy_state(args.source, args.target, merge=args.merge)
    except CopyRefused as refused:
        _say(f"service-state copy refused, nothing written: {refused}")
        return EXIT_INVALID
    print(done.summary())
    return EXIT_OK


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="export-pipeline",
        description="Export metric data to a CSV in S3 with a signed download URL.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run an export request and print the result as JSON")
    run.add_argument("request", help="request file (JSON or YAML; - for standard input)")
    run.set_defaults(handler=_cmd_run)
    validate = commands.add_parser("validate", help="check a request and print its plan")
    validate.add_argument("request", help="request file (JSON or YAML; - for standard input)")
    validate.set_defaults(handler=_cmd_validate)
    seal = commands.add_parser(
        "seal", help="print a request with its inline credentials sealed, for the Launchpad"
    )
    seal.add_argument("request", nargs="?", help="request file (JSON or YAML; - for standard input)")
    seal.add_argument("--new-key", action="store_true", help="print a new sealing key and exit")
    seal.set_defaults(handler=_cmd_seal, failure="seal failed")
    demo = commands.add_parser(
        "demo", help="build the demo store and run the example request end to end"
    )
    demo.add_argument("--rebuild", action="store_true", help="rebuild the demo metric store")
    demo.add_argument("--serve", action="store_true",
                      help="keep the local S3 server running so the URL can be opened")
    demo.add_argument("--port", type=int, default=0,
                      help="port of the local S3 server (default: any free port)")
    demo.add_argument("--lines", type=int, default=8, help="how many lines to show (default 8)")
    demo.set_defaults(handler=_cmd_demo)
    serve = commands.add_parser("serve", help="serve the export service API (see README)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.set_defaults(handler=_cmd_serve, failure="serve failed")
    keys = commands.add_parser("keys", help="API keys of the export service")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    new = key_commands.add_parser("new", help="print a new API key and the line to add to the tenants file")
    new.add_argument("--tenant", required=True, help="the tenant the key is for")
    new.add_argument("--name", default="default", help="a label for the key (an export's created_by)")
    new.set_defaults(handler=_cmd_keys, failure="keys new failed")
    service_state = commands.add_parser(
        "service-state", help="the export service's state (EXPORT_SERVICE_STATE)")
    state_commands = service_state.add_subparsers(dest="service_state_command", required=True)
    copy = state_commands.add_parser(
        "copy", help="copy every tenant's export records (deleted and unfinished ones too, so "
        "the month's quota counts hold) from one state to another, e.g. a SQLite file to "
        "PostgreSQL, in one transaction; stop the service first. Rate limit buckets are not "
        "copied (they refill)",
    )
    copy.add_argument("--from", dest="source", required=True, metavar="STATE",
                      help="the state to copy: a SQLite file (must exist) or "
                      "postgresql://host[:port]/database")
    copy.add_argument("--to", dest="target", required=True, metavar="STATE",
                      help="where to copy it: a SQLite file or postgresql://host[:port]/database "
                      "(no password in the URL: PGPASSWORD or PGPASSFILE); refused if it "
                      "already holds records, unless --merge")
    copy.add_argument("--merge", action="store_true",
                      help="copy into a state that holds records: skip the records it already "
                      "has (same tenant and id); an id it holds for another tenant refuses the copy")
    copy.set_defaults(handler=_cmd_service_state_copy, failure="service-state copy failed")
    cleanup = commands.add_parser(
        "cleanup", help="clear the export prefix: uploads killed runs left open (their parts are billed), files past retention"
    )
    what = cleanup.add_subparsers(dest="what", required=True)
    lifecycle = what.add_parser(
        "lifecycle", help="set a bucket lifecycle rule that aborts uploads under the export "
        "prefix some days after they begin (other rules are kept)",
    )
    lifecycle.add_argument("--days", type=_at_least(1, int), default=None,
                           help="days after an upload begins (default EXPORT_ABORT_UPLOAD_DAYS, 1)")
    lifecycle.set_defaults(handler=_cmd_cleanup_lifecycle, failure="cleanup failed")
    uploads = what.add_parser(
        "uploads", help="abort the uploads under the export prefix begun long ago, now "
        "(for stores without lifecycle rules; the stale_upload_sweep schedule does it hourly)",
    )
    uploads.add_argument("--older-than-hours", type=_at_least(0), default=None,
                         help="age threshold (default EXPORT_STALE_UPLOAD_HOURS, 24)")
    uploads.set_defaults(handler=_cmd_cleanup_uploads, failure="cleanup failed")
    retention = what.add_parser(
        "retention", help="set a bucket lifecycle rule that deletes export files some days after "
        "they are written (other rules are kept); --sweep deletes the older ones now instead",
    )
    retention.add_argument("--days", type=_at_least(1, int), default=None,
                           help="days an export file is kept (default EXPORT_RETENTION_DAYS, 30)")
    retention.add_argument("--sweep", action="store_true",
                           help="delete the export files older than that now (stores without "
                           "lifecycle rules; the export_retention_sweep schedule does it daily)")
    retention.set_defaults(handler=_cmd_cleanup_retention, failure="cleanup failed")
    instance = commands.add_parser(
        "instance-config", help="write a deployment's dagster.yaml from its template "
        "(deploy/dagster.yaml), the EXPORT_* deployment settings filled in; without one, "
        "the local defaults",
    )
    instance.add_argument("template", nargs="*",
                          help="the template, e.g. deploy/dagster.yaml; more templates add their "
                          "sections (deploy/run-launcher-docker.yaml: a run launcher); none: "
                          "the local defaults")
    instance.add_argument("--output", default=None,
                          help="where to write it (default $DAGSTER_HOME/dagster.yaml, or "
                          "./dagster.yaml with DAGSTER_HOME unset; - prints it)")
    instance.set_defaults(handler=_cmd_instance_config, failure="instance-config failed")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. SIGINT and SIGTERM stop it wherever it is (an upload under way is
    aborted) and end it with one line and the shell's status for the signal: 130, 143."""
    from export_pipeline import interrupts

    args = build_parser().parse_args(argv)
    with interrupts.watched() as watch:
        try:
            code = _dispatch(args, watch)
        except BaseException:
            if watch.received() is None:
                raise
            code = None
        signum = watch.received()
        if signum is None or code == EXIT_OK:
            return code
        watch.settle()
    name = interrupts.signal_name(signum)
    _say(f"interrupted by {name}: stopped before finishing (any upload under way was aborted)")
    return 128 + signum


def _dispatch(args: argparse.Namespace, watch: Any) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from export_pipeline.store.source import MetricSourceError
    from export_pipeline.contract.problems import InvalidRequest
    from export_pipeline.settings import SettingsError

    try:
        return args.handler(args)
    except InvalidRequest as error:
        if len(error.problems) == 1:
            _say(f"invalid request: {error.problems[0]}")
        else:
            _say("invalid request:")
            for problem in error.problems:
                _say(f"  {problem}")
        return EXIT_INVALID
    except SettingsError as error:
        _say(f"invalid settings: {error}")
        return EXIT_FAILED
    except (ExportFailed, MetricSourceError, RuntimeError, BotoCoreError, ClientError,
            ValueError) as error:
        if watch.received() is not None:
            raise  # an interrupted run: main says so, once
        _say(f"{getattr(args, 'failure', 'export failed')}: {error}")
        return EXIT_FAILED


def console_main() -> None:
    """The ``export-pipeline`` command (and ``python -m export_pipeline``): ``main``, then exit.

    A one-shot process spends much of its start-up importing Dagster, whose hundreds of
    thousands of new objects set off full garbage collections that find nothing to free; the
    collector is off until the run starts (``_long_lived_objects_frozen``). Before
    exiting, every object is frozen, sparing the interpreter's exit-time collections for memory the process releases anyway."""
    gc.disable()
    try:
        code = main()
        sys.stdout.flush()  # now, so a reader gone away is caught here, not at interpreter exit
    except BrokenPipeError:
        if not stdout_is_gone():
            raise  # a connection of the command's own, not its output
        code = quiet_stdout()
    gc.freeze()
    sys.exit(code)


def stdout_is_gone() -> bool:
    """Whether nothing reads stdout any more (``| head`` has exited): polling a pipe whose
    reading end is closed reports an error."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return True  # no poll, or no stdout to poll: the usual idiom, take it as gone


def quiet_stdout() -> int:
    """Output nobody reads: the rest goes to devnull (so the exit's flush raises nothing) and
    the command ends quietly, with the status a shell gives a command SIGPIPE ended."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    console_main()
