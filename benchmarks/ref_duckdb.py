"""The DuckDB reference: what a data engineer would write by hand for the benchmark's export.

One SQL query aggregates the Parquet store to one row per hour and entity with three sums,
``COPY`` writes it to a local CSV, boto3's managed transfer uploads it (multipart, threaded)
and a SigV4 URL is printed. Usage: ``python ref_duckdb.py STORE BUCKET KEY START END``.
"""

import os
import sys
import tempfile

import duckdb

from ref_upload import upload_and_print_url

MEASURES = ("visits", "dwell_seconds", "revenue")


def main(store: str, bucket: str, key: str, start: str, end: str) -> None:
    with tempfile.TemporaryDirectory(prefix="ref-duckdb-") as tmp:
        path = os.path.join(tmp, "export.csv")
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        sums = ", ".join(f'sum({m}) AS "{m}"' for m in MEASURES)
        con.execute(f"""
            COPY (
                SELECT strftime(date_trunc('hour', timestamp)::TIMESTAMP,
                                '%Y-%m-%dT%H:%M:%S+00:00') AS "Date",
                       entity_id AS "Entity", {sums}
                FROM read_parquet('{store}/**/*.parquet')
                WHERE timestamp BETWEEN TIMESTAMPTZ '{start}' AND TIMESTAMPTZ '{end}'
                GROUP BY ALL
                ORDER BY "Date", "Entity"
            ) TO '{path}' (HEADER, DELIMITER ',')
        """)
        con.close()
        upload_and_print_url(path, bucket, key)


if __name__ == "__main__":
    main(*sys.argv[1:6])
