"""SQL engines for the SQL metric source's tests: a DuckDB file and a real PostgreSQL server
started on loopback (Debian's ``postgresql`` binaries), each loaded from a polars frame."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import polars as pl

from export_pipeline_tests.support.helpers import free_port


def load_duckdb(path: Path, frame: pl.DataFrame, table: str = "metrics") -> str:
    """Write ``frame`` as ``table`` in a DuckDB file; returns the source URL."""
    import duckdb

    with duckdb.connect(str(path)) as con:
        con.register("frame", frame.to_arrow())
        con.execute(f'CREATE OR REPLACE TABLE "{table}" AS SELECT * FROM frame')
    return f"duckdb://{path}"


def postgres_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """A throwaway cluster in a temp dir: ``initdb``, ``pg_ctl start`` on 127.0.0.1 and a free
    port, unix sockets in the same dir; run as the ``postgres`` user when we are root
    (PostgreSQL refuses to run as root)."""

    def __init__(self) -> None:
        binaries = postgres_binaries()
        if binaries is None:
            raise RuntimeError("PostgreSQL binaries not found: apt-get install postgresql")
        self.bin = binaries
        self.dir = Path(tempfile.mkdtemp(prefix="pg-test-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.user = "postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.dir, account.pw_uid, account.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, cwd=self.dir)

    def start(self) -> PostgresServer:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user,
                  "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.dir} -c fsync=off "
                   "-c max_connections=20")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"),
                  "-o", options, "-w", "start")
        return self

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str) -> str:
        """A database of its own (``prefix`` and a random suffix), created now; its name."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with self.connect() as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return name

    def connect(self, database: str = "postgres"):
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user=self.user,
                               dbname=database, autocommit=True)

    def load(self, frame: pl.DataFrame, table: str = "metrics", database: str = "postgres") -> str:
        """``frame`` as ``table`` (timestamps as timestamptz), through COPY; returns the URL."""
        columns = ", ".join(f'"{name}" {_pg_type(dtype)}' for name, dtype in frame.schema.items())
        with self.connect(database) as con:
            con.execute(f'DROP TABLE IF EXISTS "{table}"')
            con.execute(f'CREATE TABLE "{table}" ({columns})')
            with con.cursor().copy(f'COPY "{table}" FROM STDIN (FORMAT csv)') as copy:
                for chunk in frame.iter_slices(500_000):
                    copy.write(chunk.write_csv(include_header=False,
                                               datetime_format="%Y-%m-%dT%H:%M:%S%.f%z"))
            con.execute(f'ANALYZE "{table}"')
        return self.url(database)

    def wait_until(self, check, timeout: float = 30.0) -> bool:
        """Poll ``check()`` until it is true; False when ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return True
            time.sleep(0.1)
        return False


def _pg_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "timestamptz" if dtype.time_zone else "timestamp"
    if dtype in (pl.Int8, pl.UInt8, pl.Int16):
        return "smallint"
    if dtype in (pl.UInt16, pl.Int32):
        return "integer"
    if dtype.is_integer():
        return "bigint"
    if dtype == pl.Float32:
        return "real"
    if dtype.is_float():
        return "double precision"
    if dtype.is_decimal():
        return f"numeric({dtype.precision}, {dtype.scale})"
    return "text"
