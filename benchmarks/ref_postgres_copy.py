"""The PostgreSQL reference: the engine's own ``COPY (the aggregate query) TO STDOUT`` into a
local CSV, then the same boto3 upload and SigV4 URL as the other references.

Usage: ``python ref_postgres_copy.py HOST PORT USER BUCKET KEY START END``.
"""

import os
import sys
import tempfile

import psycopg

from ref_upload import upload_and_print_url

MEASURES = ("visits", "dwell_seconds", "revenue")


def main(host: str, port: str, user: str, bucket: str, key: str, start: str, end: str) -> None:
    sums = ", ".join(f'sum({m}) AS "{m}"' for m in MEASURES)
    query = f"""
        SELECT to_char(date_trunc('hour', timestamp AT TIME ZONE 'UTC'),
                       'YYYY-MM-DD"T"HH24:MI:SS"+00:00"') AS "Date",
               entity_id AS "Entity", {sums}
        FROM metrics
        WHERE timestamp BETWEEN '{start}'::timestamptz AND '{end}'::timestamptz
          AND entity_type = 'sensor'
        GROUP BY 1, 2
        ORDER BY 1, 2
    """
    with tempfile.TemporaryDirectory(prefix="ref-pg-") as tmp:
        path = os.path.join(tmp, "export.csv")
        with psycopg.connect(host=host, port=int(port), user=user, dbname="postgres") as con, \
                open(path, "wb") as out:
            with con.cursor().copy(f"COPY ({query}) TO STDOUT (FORMAT csv, HEADER)") as copy:
                for chunk in copy:
                    out.write(chunk)
        upload_and_print_url(path, bucket, key)


if __name__ == "__main__":
    main(*sys.argv[1:8])
