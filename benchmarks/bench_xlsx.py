"""XLSX writing speed: the product's writer against xlsxwriter in constant-memory mode (the
``ref_xlsxwriter.py`` script) and, for scale, the product's CSV writer, on one export table.

    python benchmarks/bench_xlsx.py                      # 1,000,000 rows, 3 rounds
    python benchmarks/bench_xlsx.py --rows 200000 --runs 5
    python benchmarks/bench_xlsx.py --rows 500 --columns 2000    # a wide table

The table has the typical export shape: a date column (``YYYY-MM-DD`` text, as the export
table holds it), an entity column and three numbers (an integer count, a float with all its
digits, a float on a quarter grid), sorted by date and entity. It is written once to Parquet;
every contender is then a fresh process that reads it and times only the writing of its file
to local disk (no upload), printing the seconds and its process's peak RSS (the kernel's
``VmHWM``, which includes the table itself). Rounds rotate the order of the contenders;
ratios are medians of the per-round ratios.

Afterwards the files are read back with openpyxl: the first ``--verify-rows`` rows of the
product's and the reference's big workbooks, and every row of a small table with nulls,
NaN/inf and hostile text, written by both, compared cell by cell with each other and with the
table's own values.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HEADINGS = ["Date", "Entity", "Entries", "Dwell (s)", "Revenue"]
CONTENDERS = ("product", "xlsxwriter", "csv")
ENTITIES = 1_000


def headings(columns: int) -> list[str]:
    return HEADINGS + [f"Measure {j}" for j in range(len(HEADINGS), columns)]


def generate(rows: int, seed: int = 0, columns: int = len(HEADINGS)) -> pl.DataFrame:
    """``rows`` rows of day x entity, as the export table holds them (columns c0..c4, and
    more floats on a quarter grid up to ``columns``: a wide table)."""
    rng = np.random.default_rng(seed)
    days = -(-rows // ENTITIES)
    dates = pl.date_range(date(2022, 1, 1), date(2022, 1, 1) + (days - 1) * (date(2022, 1, 2) - date(2022, 1, 1)),
                          eager=True).dt.strftime("%Y-%m-%d")
    index = np.arange(rows)
    return pl.DataFrame({
        "c0": dates.gather(index // ENTITIES),
        "c1": pl.Series([f"location-{i:06d}" for i in range(ENTITIES)]).gather(index % ENTITIES),
        "c2": rng.integers(0, 100_000, rows),
        "c3": rng.random(rows) * 3600,
        "c4": rng.integers(0, 4_000_000, rows) / 4,
        **{f"c{j}": rng.integers(0, 4_000, rows) / 4 for j in range(len(HEADINGS), columns)},
    })


def hostile(rows: int) -> pl.DataFrame:
    """A small table with every kind of awkward cell, for the read-back check."""
    frame = generate(rows, seed=1)
    texts = ["=1+1", "+33 1 23", "-5", "@SUM(A1)", "http://x.example", "007", "1e5", "a & b < c > d \"q\"",
             "ctl\x01\x1f end", "_x0041_", " lead", "trail ", "tab\tnl\nend", "ünï ✓ 𝄞", ""]
    return frame.with_columns(
        pl.Series("c1", [texts[i // 3 % len(texts)] if i % 3 == 0 else f"location-{i:06d}" for i in range(rows)]),
        pl.when(pl.int_range(pl.len()) % 7 == 0).then(None).otherwise(pl.col("c2")).alias("c2"),
        pl.when(pl.int_range(pl.len()) % 11 == 0).then(float("nan"))
        .when(pl.int_range(pl.len()) % 13 == 0).then(float("inf"))
        .when(pl.int_range(pl.len()) % 17 == 0).then(float("-inf")).otherwise(pl.col("c3")).alias("c3"),
        pl.when(pl.int_range(pl.len()) % 5 == 0).then(None).otherwise(pl.col("c4")).alias("c4"),
    )


def child(kind: str, table: str, out: str) -> None:
    """One contender, in its own process: write ``out`` from the Parquet table."""
    sys.path.insert(0, str(ROOT))
    from export_pipeline.table.model import ExportTable

    frame = pl.read_parquet(table)
    export = ExportTable(frame=frame, headings=headings(frame.width), date_columns=("c0",))
    started, cpu = time.perf_counter(), time.process_time()
    if kind == "product":
        from export_pipeline.formats.xlsx_writer import write_xlsx

        write_xlsx(export, out)
    else:
        from export_pipeline.formats.csv_writer import iter_csv

        with open(out, "wb") as f:
            f.writelines(iter_csv(export))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    # the kernel's peak of this program's memory (VmHWM): ru_maxrss would also count the
    # parent's, as it survives fork and exec
    peak = int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read())[1]) * 1024
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_rss": peak}), flush=True)


def run(kind: str, table: Path, out: Path, columns: int = len(HEADINGS)) -> dict:
    if kind == "xlsxwriter":
        command = [sys.executable, str(HERE / "ref_xlsxwriter.py"), str(table), str(out), *headings(columns)]
    else:
        command = [sys.executable, __file__, "--child", kind, str(table), str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise SystemExit(f"{kind} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["bytes"] = out.stat().st_size
    return result


def expected_cell(value, column: int):
    """What a reader should find for a table value."""
    if value is None or value == "":
        return None  # empty text is an empty cell
    if column == 0:
        return datetime.fromisoformat(value)
    if isinstance(value, float) and math.isnan(value):
        return "=#NUM!"
    if isinstance(value, float) and math.isinf(value):
        return "=1/0" if value > 0 else "=-1/0"
    return value


def read_back(path: Path, limit: int | None = None) -> list[tuple]:
    import openpyxl

    workbook = openpyxl.load_workbook(path, read_only=True)
    rows: list[tuple] = []
    for sheet in workbook.worksheets:
        for i, row in enumerate(sheet.iter_rows(values_only=True)):
            if i == 0:
                assert list(row[:len(HEADINGS)]) == HEADINGS, row
                continue
            rows.append(tuple(row))
            if limit and len(rows) >= limit:
                return rows
    workbook.close()
    return rows


def decoded(value):
    """A text cell as Excel shows it: ``_xHHHH_`` escapes (control characters) decoded, which
    openpyxl leaves as they are in the file."""
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m[1], 16)), value) if isinstance(value, str) else value


def exact(got: tuple, want: tuple) -> bool:
    """Equal values, and an integer read back only where the table's number is integral."""
    return len(got) == len(want) and all(
        decoded(g) == w and (type(g) is type(w) or isinstance(w, float) and isinstance(g, int))
        for g, w in zip(got, want)
    )


def close(got: tuple, want: tuple) -> bool:
    return len(got) == len(want) and all(
        decoded(g) == w or isinstance(w, float) and isinstance(g, (int, float)) and math.isclose(g, w, rel_tol=1e-15)
        for g, w in zip(got, want)
    )


def verify(frame: pl.DataFrame, product: Path, reference: Path, limit: int | None) -> str:
    """Every product cell equals the table's value exactly; the reference's too, but for
    floats, which xlsxwriter writes with 16 significant digits (17 are needed to be exact)."""
    want = [tuple(expected_cell(v, i) for i, v in enumerate(row)) for row in frame.head(limit or frame.height).iter_rows()]
    got_product, got_reference = read_back(product, limit), read_back(reference, limit)
    assert len(got_product) == len(got_reference) == len(want), (len(got_product), len(got_reference), len(want))
    rounded = 0
    for n, (p, r, w) in enumerate(zip(got_product, got_reference, want)):
        assert exact(p, w), (n, p, w)
        assert close(r, w), (n, r, w)
        rounded += sum(g != x for g, x in zip(r, p))
    return f"{len(want):,} rows: product exact; xlsxwriter's differ in {rounded:,} rounded floats"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=len(HEADINGS),
                        help="more than 5: a wide table, the extra columns floats")
    parser.add_argument("--runs", type=int, default=3, help="rounds; each runs every contender")
    parser.add_argument("--only", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument("--verify-rows", type=int, default=20_000,
                        help="rows of the big workbooks read back and compared (0: none)")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "TABLE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-xlsx-") as tmp:
        work = Path(tmp)
        table = work / "table.parquet"
        frame = generate(args.rows, columns=args.columns)
        frame.write_parquet(table)
        print(f"{args.rows:,} rows x {args.columns} columns; load average {os.getloadavg()[0]:.1f}", flush=True)
        results: dict[str, list[dict]] = {k: [] for k in args.only}
        for round_ in range(args.runs):
            order = args.only[round_ % len(args.only):] + args.only[:round_ % len(args.only)]
            for kind in order:
                out = work / f"{kind}.{'csv' if kind == 'csv' else 'xlsx'}"
                result = run(kind, table, out, args.columns)
                results[kind].append(result)
                print(f"  round {round_ + 1} {kind:10s} {result['seconds']:7.2f} s  {result['cpu']:7.2f} s CPU  "
                      f"{result['peak_rss'] / 2**20:6.0f} MiB  {result['bytes'] / 2**20:6.1f} MiB file", flush=True)
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        print(f"\n{'':12s} {'median s':>9s} {'rows/s':>11s} {'CPU s':>7s} {'rows/CPU s':>11s} {'peak RSS':>9s} {'file':>9s}")
        for kind, rs in results.items():
            seconds = statistics.median(r["seconds"] for r in rs)
            cpu = statistics.median(r["cpu"] for r in rs)
            print(f"{kind:12s} {seconds:9.2f} {args.rows / seconds:11,.0f} {cpu:7.2f} {args.rows / cpu:11,.0f} "
                  f"{statistics.median(r['peak_rss'] for r in rs) / 2**20:6.0f} MiB "
                  f"{statistics.median(r['bytes'] for r in rs) / 2**20:5.1f} MiB")
        if "product" in results:
            for other in (k for k in results if k != "product"):
                ratios = [p["seconds"] / o["seconds"] for p, o in zip(results["product"], results[other])]
                cpu = [p["cpu"] / o["cpu"] for p, o in zip(results["product"], results[other])]
                memory = [p["peak_rss"] / o["peak_rss"] for p, o in zip(results["product"], results[other])]
                print(f"product/{other}: time {statistics.median(ratios):.3f}x "
                      f"(per round {', '.join(f'{r:.3f}' for r in ratios)}), CPU {statistics.median(cpu):.3f}x, "
                      f"peak RSS {statistics.median(memory):.2f}x")
        if {"product", "xlsxwriter"} <= set(results):
            if args.verify_rows:
                print("read back, big workbooks:", verify(frame, work / "product.xlsx", work / "xlsxwriter.xlsx",
                                                         args.verify_rows))
            small = hostile(5_000)
            small.write_parquet(table)
            run("product", table, work / "product.xlsx")
            run("xlsxwriter", table, work / "xlsxwriter.xlsx")
            print("read back, small hostile table:", verify(small, work / "product.xlsx", work / "xlsxwriter.xlsx", None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
