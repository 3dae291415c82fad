"""``export-pipeline``: run, validate and demo exports from the command line.

Exit status: 0 done; 2 invalid request (every problem on stderr, nothing run or written);
1 the export failed (the reason on stderr). ``run`` prints one JSON object as the last line
of stdout; progress goes to stderr.
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
DEMO_BUCKET = "export-pipeline-demo"


class ExportFailed(RuntimeError):
    pass


def _metric_source():
    from export_pipeline.demo.store import default_path
    from export_pipeline.settings import get_metric_source_settings
    from export_pipeline.store.configured import metric_source

    return metric_source(get_metric_source_settings(), str(default_path()))


def _validate(document: Any, source: Any = None):
    """Validate against the configured store's schema; raises InvalidRequest or MetricSourceError."""
    from export_pipeline.contract.validation import validate_document

    return validate_document(document, (source or _metric_source()).schema())


def _instance():
    import dagster as dg

    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def run_export(document: Any) -> dict[str, Any]:
    """Run the export job on a validated document; the seed-000 response plus run id and counts."""
    if not os.environ.get("EXPORT_BUCKET"):
        raise ExportFailed("EXPORT_BUCKET is not set: name the bucket exports are written to")
    import dagster as dg

    from export_pipeline.orchestration.environment import export_resources
    from export_pipeline.orchestration.jobs import export_job
    from export_pipeline.orchestration.run_outcomes import step_failure_reason

    document = _sealed(document)
    # The export job and its resources alone: the code location's sensors, schedules and
    # saved exports are not needed to run one export, and cost start-up.
    job = dg.Definitions(jobs=[export_job], resources=export_resources()).resolve_job_def(
        "export_job"
    )
    with _instance() as instance, _long_lived_objects_frozen():
        result = job.execute_in_process(
            run_config=document, instance=instance, raise_on_error=False
        )
        if not result.success:
            reasons = [
                step_failure_reason(f.step_failure_data)
                for f in result.get_step_failure_events()
            ]
            raise ExportFailed(
                f"run {result.run_id} failed: " + ("\n".join(reasons) or "see the run's event log")
            )
        export = result.output_for_node("materialize_export")
        response = {"run_id": result.run_id, **export.to_response()}
        if "deliver_export" in {e.node_name for e in result.get_step_success_events()
                                if e.node_name}:
            receipts = result.output_for_node("deliver_export")
            response["deliveries"] = [receipts[k] for k in sorted(receipts)]
        return response


@contextlib.contextmanager
def _long_lived_objects_frozen():
    """Collect garbage during the run, but not among the objects the imports made (Dagster's
    are most of them): they live as long as the process, yet every full collection would walk
    them all. Freezing them took about 0.3 s off a benchmark export.

    The command line turns the collector off while modules load (``console_main``); start-up
    is over here, so it is on from here on, whatever follows the run (``demo --serve`` keeps
    serving)."""
    gc.freeze()
    gc.enable()
    try:
        yield
    finally:
        gc.unfreeze()


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

    if plaintext_secret_paths(document) and not os.environ.get("EXPORT_SEALING_KEY"):
        os.environ["EXPORT_SEALING_KEY"] = generate_key()
        _say("EXPORT_SEALING_KEY is not set: sealed the request's credentials with a key "
             "made for this run only")
    return seal_for_run_config(document)


def _read(path: str) -> Any:
    from export_pipeline.contract.models import read_document

    return read_document(path)


def _cmd_run(args: argparse.Namespace) -> int:
    document = _read(args.request)
    source = _metric_source()
    from export_pipeline.store import prefetch

    try:
        validated = _validate(document, source)
        _start_reads(validated, source)
        try:
            response = run_export(document)
        finally:
            prefetch.clear()
    finally:
        # A SQL source's connection: closing it cancels a read-ahead still running in the
        # engine when the run failed or was interrupted (Ctrl-C).
        getattr(source, "close", lambda: None)()
    print(json.dumps(response), flush=True)  # a caller may act on it before exit
    return EXIT_OK


def _start_reads(validated: Any, source: Any) -> None:
    """Start the plan's store reads now, so they run while Dagster starts (see ``prefetch``).
    The plan is the one the job's plan op makes from the same request (sealing changes only
    destination credentials): the same queries, time zone and samples mode included."""
    from export_pipeline.store import prefetch
    from export_pipeline.planning.plan import plan_export

    plan = plan_export(validated.request, validated.request_id or "cli")
    prefetch.start(source, [scan.query for scan in plan.scans])


def _cmd_validate(args: argparse.Namespace) -> int:
    from export_pipeline.planning.plan import plan_export

    validated = _validate(_read(args.request))
    from export_pipeline.destinations.factory import describe_spec

    plan = plan_export(validated.request, validated.request_id or "<run id>")
    described = plan.describe()
    described["deliveries"] = [describe_spec(d) for d in validated.request.deliveries()]
    print(json.dumps(described, indent=2))
    return EXIT_OK


def _cmd_seal(args: argparse.Namespace) -> int:
    from export_pipeline.destinations.sealing import Sealer, generate_key, seal_document

    if args.new_key:
        print(generate_key())
        return EXIT_OK
    if not args.request:
        raise ExportFailed("give a request file to seal (or --new-key)")
    key = os.environ.get("EXPORT_SEALING_KEY")
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

    from export_pipeline.demo.store import build_demo_store, default_path
    from export_pipeline.demo.local_s3 import local_s3_server

    with contextlib.ExitStack() as stack:
        if not (os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")):
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
        os.environ.setdefault("EXPORT_BUCKET", DEMO_BUCKET)
        _ensure_bucket(os.environ["EXPORT_BUCKET"])
        store = os.environ.setdefault("EXPORT_METRICS_PATH", str(default_path()))
        if args.rebuild or not any(os.scandir(store) if os.path.isdir(store) else []):
            _say(f"building the demo metric store in {store}")
            build_demo_store(store)
        document = json.loads(
            resources.files("export_pipeline").joinpath("examples/seed_000_request.json").read_text()
        )
        _validate(document)
        response = run_export(document)
        with urllib.request.urlopen(response["signedUrl"], timeout=30) as download:
            lines = download.read().decode("utf-8").splitlines()
        print(f"Exported {response['rows']} rows ({response['bytes']} bytes) "
              f"to s3://{response['bucket']}/{response['key']}")
        print("First lines, downloaded through the signed URL:")
        for line in lines[: args.lines]:
            print(f"  {line}")
        print(f"Signed URL (expires in {os.environ.get('EXPORT_URL_TTL', '3600')} s):")
        print(response["signedUrl"])
        if args.serve:
            import time

            print("\nThe local S3 server keeps running until Ctrl-C. To use it from another "
                  "shell (the Dagster UI, export-pipeline run):")
            for name in ("AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                         "AWS_DEFAULT_REGION", "EXPORT_BUCKET", "EXPORT_METRICS_PATH"):
                print(f"  export {name}={os.environ[name]}")
            sys.stdout.flush()
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
    return EXIT_OK


def _ensure_bucket(name: str) -> None:
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client("s3")
    try:
        client.head_bucket(Bucket=name)
    except ClientError:
        client.create_bucket(Bucket=name)
        _say(f"created bucket {name}")


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
    seal.set_defaults(handler=_cmd_seal)
    demo = commands.add_parser(
        "demo", help="build the demo store and run the seed 000 example end to end"
    )
    demo.add_argument("--rebuild", action="store_true", help="rebuild the demo metric store")
    demo.add_argument("--serve", action="store_true",
                      help="keep the local S3 server running so the URL can be opened")
    demo.add_argument("--port", type=int, default=0,
                      help="port of the local S3 server (default: any free port)")
    demo.add_argument("--lines", type=int, default=8, help="how many lines to show (default 8)")
    demo.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from export_pipeline.store.source import MetricSourceError
    from export_pipeline.contract.models import InvalidRequest

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except InvalidRequest as error:
        _say("invalid request:")
        for problem in error.problems:
            _say(f"  {problem}")
        return EXIT_INVALID
    except (ExportFailed, MetricSourceError, RuntimeError, BotoCoreError, ClientError,
            ValueError) as error:
        _say(f"export failed: {error}")
        return EXIT_FAILED


def console_main() -> None:
    """The ``export-pipeline`` command (and ``python -m export_pipeline``): ``main``, then exit.

    A one-shot process spends much of its start-up importing Dagster, whose hundreds of
    thousands of new objects set off full garbage collections that find nothing to free; the
    collector is off until the run starts (``_long_lived_objects_frozen``), about 0.2 s. Before
    exiting, every object is frozen, sparing the interpreter's exit-time collections (about
    0.5 s after an export) for memory the process releases anyway."""
    gc.disable()
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    console_main()
