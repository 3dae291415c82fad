"""The SQL metric source on a real PostgreSQL server: the Parquet source's frames, its errors
in one line, statement timeout, a transient error retried, and an interrupted query cancelled
in the engine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid

import pytest

from export_pipeline.store.parquet import ParquetMetricSource
from export_pipeline.store.source import MetricSourceError
from export_pipeline.store.sql import ColumnMapping, SqlMetricSource
from export_pipeline.timeline.periods import AggregationPeriod
from export_pipeline_tests.support.helpers import free_port, write_store
from export_pipeline_tests.support.sql_stores import load_duckdb
from export_pipeline_tests.unit.store import test_sql as sql_unit_tests
from export_pipeline_tests.unit.store.test_sql import FRAME, q

P = AggregationPeriod


@pytest.fixture(scope="module")
def sources(postgres, tmp_path_factory):
    parquet = ParquetMetricSource(write_store(tmp_path_factory.mktemp("pq") / "store", FRAME))
    url = postgres.load(FRAME)
    with SqlMetricSource(url) as sql:
        yield parquet, sql


# The DuckDB tests' comparisons with the Parquet source, run here on ``sources`` above.
test_same_frame_as_parquet = sql_unit_tests.test_same_frame_as_parquet
test_samples_and_filters_match_parquet = sql_unit_tests.test_samples_and_filters_match_parquet
test_a_query_without_measures_gives_its_keys = sql_unit_tests.test_a_query_without_measures_gives_its_keys


def test_missing_table_and_wrong_types(postgres):
    with postgres.connect() as con:
        con.execute("DROP TABLE IF EXISTS odd")
        con.execute("CREATE TABLE odd (timestamp text, entity_id text, entity_type text, v int)")
    with SqlMetricSource(postgres.url(), "nowhere") as source:
        with pytest.raises(MetricSourceError, match="has no table 'nowhere'") as caught:
            source.schema()
    assert "\n" not in str(caught.value)
    with SqlMetricSource(postgres.url(), "odd") as source:
        with pytest.raises(MetricSourceError, match="'timestamp' .* must be a timestamp column"):
            source.schema()


def test_an_unreachable_server_is_one_line():
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    with pytest.raises(MetricSourceError, match="cannot connect to metric source") as caught:
        SqlMetricSource(url, retries=0).schema()
    assert "\n" not in str(caught.value)


def _slow_view(postgres, name: str, seconds: float) -> None:
    with postgres.connect() as con:
        con.execute(
            "CREATE OR REPLACE FUNCTION slowly(t text, seconds float) RETURNS text "
            "LANGUAGE plpgsql VOLATILE AS $$ BEGIN PERFORM pg_sleep(seconds); RETURN t; END $$"
        )
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT m.timestamp, "
                    f"slowly(m.entity_id, {seconds}) AS entity_id, m.entity_type, m.segments, "
                    "m.age, m.entries, m.revenue FROM metrics m")


def _active(postgres, app: str) -> int:
    with postgres.connect() as con:
        return con.execute("SELECT count(*) FROM pg_stat_activity WHERE "
                           "application_name = %s AND state = 'active'", [app]).fetchone()[0]


def test_statement_timeout_stops_a_long_query(sources, postgres):
    _slow_view(postgres, "slow_metrics", 0.05)
    with SqlMetricSource(postgres.url(), "slow_metrics", statement_timeout_seconds=0.5) as source:
        with pytest.raises(MetricSourceError, match="statement timeout"):
            source.fetch(q(P.day))


def test_too_many_connections_is_retried(postgres):
    role = f"limited_{uuid.uuid4().hex[:6]}"
    with postgres.connect() as con:
        con.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1")
        con.execute(f"GRANT SELECT ON metrics TO {role}")
    url = f"postgresql://{role}@127.0.0.1:{postgres.port}/postgres"
    held = postgres.connect()
    held.execute(f"SET ROLE {role}")
    import psycopg

    blocker = psycopg.connect(host="127.0.0.1", port=postgres.port, user=role, dbname="postgres")
    try:
        with pytest.raises(MetricSourceError, match=r"after 3 attempts.*too many connections"):
            SqlMetricSource(url, retries=2, backoff_seconds=0.05).schema()
        # Released while the source backs off: a retry gets through.
        threading.Timer(0.3, blocker.close).start()
        with SqlMetricSource(url, retries=6, backoff_seconds=0.2) as source:
            assert "entries" in source.schema().measures
    finally:
        blocker.close()
        held.close()


CHILD = """
import sys
from export_pipeline.store.sql import SqlMetricSource
from export_pipeline_tests.unit.store.test_sql import q
from export_pipeline.timeline.periods import AggregationPeriod
source = SqlMetricSource(sys.argv[1], "very_slow_metrics", application_name=sys.argv[2],
                         statement_timeout_seconds=0)
source.schema()
print("ready", flush=True)
source.fetch(q(AggregationPeriod.day))
"""


def test_an_interrupted_query_leaves_the_engine(sources, postgres):
    """SIGINT (a run being stopped) while the engine works: the query is cancelled there, not
    left running after the client has gone."""
    _slow_view(postgres, "very_slow_metrics", 1)
    app = f"export_test_{uuid.uuid4().hex[:8]}"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, postgres.url(), app],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )

    try:
        assert child.stdout.readline().strip() == "ready"
        assert postgres.wait_until(lambda: _active(postgres, app) == 1), "the query never started"
        child.send_signal(signal.SIGINT)
        child.wait(timeout=60)
        assert child.returncode != 0 and "KeyboardInterrupt" in child.stderr.read()
        assert postgres.wait_until(lambda: _active(postgres, app) == 0, timeout=20)
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("cancels_lost", [0, 1], ids=["cancel-arrives", "first-cancel-lost"])
def test_closing_the_source_cancels_its_running_query(sources, postgres, monkeypatch, cancels_lost):
    """What the resource's teardown does when a run fails or is stopped while a fetch still
    runs in another thread: the engine stops the statement and the fetch fails cleanly. A
    cancel request can time out on a busy server, or reach it just before the statement
    starts: ``close`` keeps cancelling while the fetch still runs."""
    _slow_view(postgres, "very_slow_metrics", 1)
    app = f"export_test_{uuid.uuid4().hex[:8]}"
    source = SqlMetricSource(postgres.url(), "very_slow_metrics", application_name=app,
                             statement_timeout_seconds=0)
    source.schema()
    sent: list[int] = []
    really_cancel = SqlMetricSource._cancel

    def cancel(self, con):
        sent.append(len(sent))
        if len(sent) > cancels_lost:
            really_cancel(self, con)

    monkeypatch.setattr(SqlMetricSource, "_cancel", cancel)
    outcome: list[BaseException] = []

    def fetch() -> None:
        try:
            source.fetch(q(P.day))
        except BaseException as error:
            outcome.append(error)

    worker = threading.Thread(target=fetch)
    worker.start()
    try:
        assert postgres.wait_until(lambda: _active(postgres, app) == 1), "the query never started"
        source.close()
        worker.join(timeout=60)
        assert not worker.is_alive()
        assert len(sent) > cancels_lost
        assert isinstance(outcome[0], MetricSourceError) and "cancel" in str(outcome[0])
        assert postgres.wait_until(lambda: _active(postgres, app) == 0, timeout=20)
    finally:
        monkeypatch.undo()
        source.close()


def test_a_fetch_closed_before_its_statement_starts_opens_no_connection(sources, postgres, monkeypatch):
    """``close`` lands between a fetch binding the table and running its statement: the fetch
    fails as cancelled instead of opening a new connection that ``close`` never sees, and
    running its query there."""
    from export_pipeline.store import sql

    app = f"export_test_{uuid.uuid4().hex[:8]}"
    source = SqlMetricSource(postgres.url(), application_name=app)
    source.schema()
    really_build = sql.build_expression

    def closed_meanwhile(*args, **kwargs):
        source.close()
        return really_build(*args, **kwargs)

    monkeypatch.setattr(sql, "build_expression", closed_meanwhile)
    with pytest.raises(MetricSourceError, match="cancelled"):
        source.fetch(q(P.day))
    monkeypatch.undo()
    assert source._con is None
    with postgres.connect() as con:
        assert con.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                           [app]).fetchone()[0] == 0
    assert source.fetch(q(P.day)).height > 0, "a fetch begun after the close opens a connection"
    source.close()


def test_ctrl_c_on_the_cli_cancels_its_reads_in_the_engine(sources, postgres, bucket, tmp_path):
    """``export-pipeline run`` reads ahead in a background thread while Dagster starts: a
    Ctrl-C then must still stop that query in the engine, not leave it running there."""
    import json

    from export_pipeline_tests.integration.store.test_sql_exports import REQUESTS

    _slow_view(postgres, "very_slow_metrics", 1)
    request = tmp_path / "request.json"
    request.write_text(json.dumps(REQUESTS["wide-hourly-utc"]))
    child = subprocess.Popen(
        [sys.executable, "-m", "export_pipeline", "run", str(request)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path),
             "EXPORT_METRICS_SOURCE": postgres.url(), "EXPORT_METRICS_TABLE": "very_slow_metrics",
             "EXPORT_METRICS_COLUMNS": "", "EXPORT_METRICS_MEASURES": ""},
    )

    try:
        started = postgres.wait_until(
            lambda: _active(postgres, "export_pipeline") >= 1 or child.poll() is not None, 60)
        assert started and child.poll() is None, child.communicate()
        child.send_signal(signal.SIGINT)
        child.wait(timeout=60)
        assert child.returncode != 0
        assert postgres.wait_until(lambda: _active(postgres, "export_pipeline") == 0, timeout=20)
    finally:
        child.kill()
        child.wait()


def test_sum_types_agree_with_parquet(postgres, tmp_path):
    """PostgreSQL sums an ``integer`` in bigint, a ``bigint`` in numeric and a ``real`` in real:
    the export's numbers (and its error past Int64) are the Parquet source's all the same."""
    from export_pipeline_tests.unit.store import test_sum_types as t

    parquet = ParquetMetricSource(write_store(tmp_path / "narrow", t.NARROW))
    with SqlMetricSource(postgres.load(t.NARROW, "narrow"), "narrow") as sql:
        measures = ["i32", "u32", "i16", "f32"]
        for source in (parquet, sql):
            assert t.export_csv(t.document(measures), source) == t.SUMS
            assert t.export_csv(t.document(measures, "avg"), source) == t.AVERAGES
    parquet = ParquetMetricSource(write_store(tmp_path / "wide", t.WIDE))
    with SqlMetricSource(postgres.load(t.WIDE, "wide"), "wide") as sql:
        errors = []
        for source in (parquet, sql):
            with pytest.raises(t.SumOutOfRange) as caught:
                t.export_csv(t.document(["i64"]), source)
            errors.append(str(caught.value))
            assert t.export_csv(t.document(["i64"], "avg"), source).splitlines()[1:] == [
                "2024-01-01T00:00:00+00:00,4.611686018427388e+18",  # entity a
                "2024-01-01T00:00:00+00:00,2.305843009213694e+18",  # b: (2**62 - 5) / 2
            ]
        assert errors[0] == errors[1] and "measure 'i64': the sum 9223372036854775808 " in errors[0]


def test_decimals_agree_with_parquet(postgres, tmp_path):
    """A ``numeric(p, s)`` measure sums exactly in PostgreSQL, as the Parquet store's decimals
    do: the same file, to the cent, and the same error for a total past 38 digits, up or down,
    as DuckDB's too (which refuses the sum itself, then reads it in wide form). A plain
    ``numeric`` (no fixed scale) is no measure: left out when the measures are found, refused
    by name when named."""
    from export_pipeline_tests.unit.store import test_sum_types as t

    parquet = ParquetMetricSource(write_store(tmp_path / "decimals", t.DECIMALS))
    with SqlMetricSource(postgres.load(t.DECIMALS, "decimals"), "decimals") as sql:
        for document in (t.document(["amount", "big"]), t.document(["amount"], "avg"),
                         t.document(["amount", "big"], "stddev"), t.document(["big"], transform="delta")):
            assert t.export_csv(document, sql) == t.export_csv(document, parquet)
        assert t.export_csv(t.document(["amount", "big"]), sql).splitlines()[1] == (
            f"{t.H0},0.30,123456789012345678.92")
    with postgres.connect() as con:
        con.execute("DROP TABLE IF EXISTS loose")
        con.execute("CREATE TABLE loose (timestamp timestamptz, entity_id text, entity_type text, "
                    "amount numeric, visits integer)")
    with SqlMetricSource(postgres.url(), "loose") as sql:
        assert sql.schema().measures == ("visits",)
    named = ColumnMapping.parse("", "amount,visits")
    with SqlMetricSource(postgres.url(), "loose", named) as sql:
        with pytest.raises(MetricSourceError, match="measure 'amount' is a decimal of no fixed scale"):
            sql.schema()
    for sign in ("", "-"):
        most = t.DECIMALS.head(2).with_columns(
            amount=t.decimals([sign + t.MOST, sign + "0.01"], 38)).drop("big")
        parquet = ParquetMetricSource(write_store(tmp_path / f"most{sign}", most))
        with (SqlMetricSource(postgres.load(most, "most"), "most") as sql,
              SqlMetricSource(load_duckdb(tmp_path / f"most{sign}.db", most)) as duckdb):
            errors = []
            for source in (parquet, sql, duckdb):
                with pytest.raises(t.SumOutOfRange) as caught:
                    t.export_csv(t.document(["amount"]), source)
                errors.append(str(caught.value))
        assert errors[0] == errors[1] == errors[2]
        assert f"measure 'amount': the sum {sign}1{'0' * 36}.00 (bucket" in errors[0]
