"""The store read's floor in polars: the product's read of the standard request against other
forms of the same hourly group-by, each a fresh process, alternating, CPU seconds.

The read is the largest part of the CSV export's CPU; this shows which part of it is the
Parquet decoding and which the group-by, and that the other ways polars offers to write the
same group-by are not cheaper. Run ``bench_export.py --keep --workdir DIR`` first and pass
the store it made (``DIR/store-x1``).

Usage: ``python bench_read_forms.py --store DIR/store-x1 [--runs 5]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from bench_export import END, MEASURES, START

FORMS = {
    "decode": "the five columns decoded, no group-by",
    "product": "the product's read (ParquetMetricSource.fetch: 8-day slices, streaming)",
    "floor-expr": "the same with a plain sum, no no-value guard (wrong for the product)",
    "whole": "one streaming group-by over the whole window, groups in first-seen order",
    "unordered": "the same, groups in any order",
    "categorical": "the same, the entity cast to Categorical",
    "int-keys": "the same, grouped on integer hour and entity codes",
    "in-memory": "the same on the in-memory engine",
    "sorted": "sorted on the keys first",
}


def run_form(form: str, store: str) -> dict:
    """One form in this process: the CPU seconds of the read alone (imports excluded)."""
    import polars as pl

    from export_pipeline.store import parquet
    from export_pipeline.store.source import MetricQuery
    from export_pipeline.timeline.periods import AggregationPeriod
    from export_pipeline.timeline.windows import Window

    scan = pl.scan_parquet(f"{store}/**/*.parquet", hive_partitioning=False)
    hour = pl.col("timestamp").dt.truncate("1h")
    grouped = scan.select(hour, "entity_id", *MEASURES)
    sums = pl.col(*MEASURES).sum()
    cpu = time.process_time()
    if form in ("product", "floor-expr"):
        if form == "floor-expr":
            parquet.sum_or_null = lambda expr: expr.sum()
        query = MetricQuery(
            window=Window(START, END, end_inclusive=True), period=AggregationPeriod.hour,
            entities=None, entity_type=None, dimensions=(), measures=MEASURES,
        )
        frame = parquet.ParquetMetricSource(store).fetch(query)
    elif form == "decode":
        frame = scan.select("timestamp", "entity_id", *MEASURES).collect(engine="streaming")
    elif form == "whole":
        frame = grouped.group_by("timestamp", "entity_id", maintain_order=True).agg(sums).collect(
            engine="streaming"
        )
    elif form == "unordered":
        frame = grouped.group_by("timestamp", "entity_id").agg(sums).collect(engine="streaming")
    elif form == "categorical":
        frame = (
            grouped.with_columns(pl.col("entity_id").cast(pl.Categorical))
            .group_by("timestamp", "entity_id", maintain_order=True).agg(sums)
            .collect(engine="streaming")
        )
    elif form == "int-keys":
        frame = (
            grouped.with_columns(
                h=pl.col("timestamp").dt.epoch("s") // 3600,
                e=pl.col("entity_id").cast(pl.Categorical).to_physical(),
            )
            .group_by("h", "e", maintain_order=True)
            .agg(sums, pl.col("timestamp").first(), pl.col("entity_id").first())
            .collect(engine="streaming")
        )
    elif form == "in-memory":
        frame = grouped.group_by("timestamp", "entity_id", maintain_order=True).agg(sums).collect(
            engine="in-memory"
        )
    elif form == "sorted":
        frame = (
            grouped.sort("timestamp", "entity_id")
            .group_by("timestamp", "entity_id", maintain_order=True).agg(sums)
            .collect(engine="streaming")
        )
    else:
        raise SystemExit(f"unknown form {form}")
    return {"cpu": time.process_time() - cpu, "rows": frame.height}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", required=True, help="bench_export.py's store-x1 folder")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--form", help=argparse.SUPPRESS)  # one form, in a child process
    args = parser.parse_args()
    if args.form:
        print(json.dumps(run_form(args.form, args.store)), flush=True)
        return 0
    forms = list(FORMS)
    cpu: dict[str, list[float]] = {f: [] for f in forms}
    for round_ in range(args.runs):
        for form in forms[round_ % len(forms):] + forms[: round_ % len(forms)]:
            out = subprocess.run(
                [sys.executable, __file__, "--store", args.store, "--form", form],
                check=True, capture_output=True, text=True,
            ).stdout.splitlines()[-1]
            cpu[form].append(json.loads(out)["cpu"])
    base = statistics.median(cpu["product"])
    print(f"CPU seconds of the read alone, medians of {args.runs} alternating fresh processes")
    for form in forms:
        m = statistics.median(cpu[form])
        print(f"{form:12} {m:6.2f} s  {m / base:5.2f}x product  "
              f"({min(cpu[form]):.2f}-{max(cpu[form]):.2f})  {FORMS[form]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
