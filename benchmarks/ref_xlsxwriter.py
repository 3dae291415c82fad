"""The reference for ``bench_xlsx.py``: the export table as a workbook written with
xlsxwriter in constant-memory mode, row by row, as a data engineer would (and as the product
did before it wrote the XML itself). Typed cells: the date column parsed to dates with a
``yyyy-mm-dd`` format, numbers as numbers, text never a formula/number/URL, NaN/inf as
errors; bold frozen header.

Usage: ``python ref_xlsxwriter.py TABLE.parquet OUT.xlsx HEADING...``; prints one JSON line
with the seconds spent writing and the process's peak RSS.
"""

import json
import re
import sys
import time

import polars as pl
import xlsxwriter

ROWS_PER_SHEET = 1_048_575  # under the header row


def main(table: str, out: str, headings: list[str]) -> None:
    frame = pl.read_parquet(table)
    started, cpu = time.perf_counter(), time.process_time()
    frame = frame.with_columns(pl.col(frame.columns[0]).str.to_date("%Y-%m-%d"))
    workbook = xlsxwriter.Workbook(out, {
        "constant_memory": True, "strings_to_formulas": False, "strings_to_numbers": False,
        "strings_to_urls": False, "nan_inf_to_errors": True, "default_date_format": "yyyy-mm-dd",
    })
    bold = workbook.add_format({"bold": True, "bottom": 1})
    for number, offset in enumerate(range(0, max(frame.height, 1), ROWS_PER_SHEET)):
        sheet = workbook.add_worksheet("Export" if number == 0 else f"Export ({number + 1})")
        sheet.write_row(0, 0, headings, bold)
        sheet.freeze_panes(1, 0)
        for row, values in enumerate(frame.slice(offset, ROWS_PER_SHEET).iter_rows(), start=1):
            sheet.write_row(row, 0, values)
    workbook.close()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    # the kernel's peak of this program's memory (VmHWM): ru_maxrss would also count the
    # parent's, as it survives fork and exec
    peak = int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read())[1]) * 1024
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_rss": peak}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
