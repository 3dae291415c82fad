"""The export table as an Excel workbook (XLSX), its XML written by polars expressions.

Cells are typed: numbers as numbers, dates as Excel dates (``yyyy-mm-dd``; ``yyyy-mm-dd
hh:mm`` below a day, the local wall time of the export's time zone, as Excel has no offsets),
text as inline text cells, which Excel never reads as a formula, a number or a URL, so a value
such as ``=HYPERLINK(…)`` stays inert text. NaN and infinities are error cells (``#NUM!``,
``#DIV/0!``), nulls are empty. The header row is bold and frozen, columns are sized to their
content, and an export longer than one sheet (1,048,575 data rows under the header) continues
on further sheets.

The workbook is a zip of a few fixed parts and one XML part per sheet. A sheet's rows are
built a slice at a time, each row one string that ``pl.format`` puts together from per-column
cell fragments, so no Python code runs per row or per cell, and each slice is deflated into
the zip as it comes: the file is yielded in chunks, never whole in memory. Text is written as
xlsxwriter writes it (the writer this replaced), so cells read back as they did: ``& < >``
escaped, control characters as ``_xHHHH_`` escapes (a literal ``_xHHHH_`` escaped as
``_x005F_xHHHH_``), at most 32,767 UTF-16 units. Numbers are written in their shortest form
that reads back to the same float, decimals in their own digits (``0.30``), as CSV writes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from export_pipeline.formats.zip_stream import ZipStream
from export_pipeline.table.model import ExportTable

CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_DATA_ROWS = 1_048_575  # Excel's 1,048,576 rows per sheet, less the header
MAX_COLUMNS = 16_384  # Excel's column limit (XFD)
MAX_TEXT = 32_767  # Excel's longest cell text, in UTF-16 units
MAX_WIDTH = 60
SHEET_NAME = "Export"
CELLS_PER_SLICE = 250_000  # a slice of rows holds about this many cells, whatever the width
HEADER_STYLE, DATE_STYLE = 1, 2  # cellXfs indexes in STYLES
EPOCH_SERIAL = 25_569  # 1970-01-01 as an Excel serial day
FIRST_TRUE_DAY = date(1900, 3, 1)  # serials before it count Excel's phantom 1900-02-29
US_PER_DAY = 86_400_000_000
LONGEST_CELL = 96  # bytes of a cell's markup and of the longest number, at most

XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"

# Control characters XML 1.0 cannot hold (tab and line feed it can) and the two
# non-characters, as xlsxwriter and Excel escape them.
CONTROL = [chr(c) for c in (*range(0x09), *range(0x0B, 0x20), 0xFFFE, 0xFFFF)]
TEXT_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", **{c: f"_x{ord(c):04X}_" for c in CONTROL}}
ESCAPE_FROM = pl.lit(pl.Series(list(TEXT_ESCAPES))).implode()  # built once: a list each time
ESCAPE_TO = pl.lit(pl.Series(list(TEXT_ESCAPES.values()))).implode()  # costs a wide sheet seconds
ESCAPED_ESCAPE = r"_x[0-9a-fA-F]{4}_"
EDGE_SPACE = r"^\s|\s$"
ASTRAL = r"[\x{10000}-\x{10FFFF}]"


def typed_frame(table: ExportTable) -> pl.DataFrame:
    """The table with its formatted date columns parsed back to dates or local datetimes."""
    if not table.date_columns:
        return table.frame
    if table.subdaily:
        parse = lambda c: pl.col(c).str.slice(0, 19).str.to_datetime("%Y-%m-%dT%H:%M:%S")  # noqa: E731
    else:
        parse = lambda c: pl.col(c).str.to_date("%Y-%m-%d")  # noqa: E731
    return table.frame.with_columns(parse(c) for c in table.date_columns)


def column_widths(frame: pl.DataFrame, headings: list[str]) -> list[int]:
    """Each column's width: its longest value as text (a number or date as polars writes it)
    or its heading, two characters more, within bounds."""
    lengths = frame.select(_longest(n, t) for n, t in frame.schema.items()).row(0) if frame.height else [0] * frame.width
    return [min(MAX_WIDTH, max(len(h), n, 10 if i == 0 else 6) + 2) for i, (h, n) in enumerate(zip(headings, lengths))]


def _longest(name: str, dtype: pl.DataType) -> pl.Expr:
    """The most characters of a value of the column as text. An integer or a date is longest
    at one of its extremes, so only those two are written out."""
    values = pl.col(name)
    if dtype.is_integer() or dtype == pl.Date or isinstance(dtype, pl.Datetime):
        longest = pl.max_horizontal(values.min().cast(pl.String).str.len_chars(), values.max().cast(pl.String).str.len_chars())
    else:
        longest = values.cast(pl.String).str.len_chars().max()
    return longest.fill_null(0).alias(name)


def sheet_name(index: int) -> str:
    return SHEET_NAME if index == 0 else f"{SHEET_NAME} ({index + 1})"


def sheet_count(rows: int, max_rows: int = MAX_DATA_ROWS) -> int:
    return max(1, -(-rows // max_rows))


def column_letter(index: int) -> str:
    """``A`` for the first column, ``XFD`` for the last."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def xml_width(width: int) -> float:
    """The ``<col width>`` Excel stores for a width in characters (Calibri 11: 7-pixel
    digits, 5 pixels of padding, in 1/256ths), as xlsxwriter computes it."""
    return int((int(width * 7 + 0.5) + 5) / 7 * 256) / 256


def rows_per_slice(columns: int, cells: int = CELLS_PER_SLICE) -> int:
    return max(1, cells // max(1, columns))


def refuse_too_wide(table: ExportTable) -> None:
    """A table wider than a sheet is refused rather than cut: a file missing numbers is worse
    than no file."""
    if len(table.headings) > MAX_COLUMNS:
        raise ValueError(
            f"the export has {len(table.headings):,} columns and an Excel sheet holds "
            f"{MAX_COLUMNS:,}; use csv, the long layout, or fewer entities or buckets"
        )


def escape_text(text: pl.Expr, escaped_escapes: bool = True) -> pl.Expr:
    """Cell text as XML character data, with xlsxwriter's escapes (``escaped_escapes``: the
    text may hold a literal ``_xHHHH_``)."""
    if escaped_escapes:
        text = text.str.replace_all(ESCAPED_ESCAPE, "_x005F$0")
    return text.str.replace_many(ESCAPE_FROM, ESCAPE_TO)


def truncate_text(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """Cut text longer than a cell holds to its first 32,767 UTF-16 units (a character above
    U+FFFF counts two), without splitting a character, as xlsxwriter does."""
    values = frame[column]
    chars = values.str.len_chars()
    if not (chars > MAX_TEXT // 2).any():
        return frame
    too_long = (chars + values.str.count_matches(ASTRAL)) > MAX_TEXT
    if not too_long.any():
        return frame
    where = too_long.arg_true()
    cut = [utf16_prefix(v) for v in values.gather(where).to_list()]
    return frame.with_columns(values.clone().scatter(where, cut))


def utf16_prefix(text: str) -> str:
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > MAX_TEXT:
            return text[:index]
    return text


ROW = "__row__"  # a slice's row numbers, as text; export columns are named c0, c1, …
ROW_INDEX, COLUMN_INDEX, NAME, VALUE, XML = "__r__", "__c__", "__name__", "__value__", "__xml__"
WIDE = 64  # columns past which a slice is written in the long form
Piece = str | pl.Expr


def _joined(pieces: list[Piece], ignore_nulls: bool) -> pl.Expr:
    """``pieces`` end to end: null if one is, unless ``ignore_nulls`` (then it counts as empty).
    ``pl.format`` takes the literal pieces as its template, which is quicker than
    ``concat_str`` broadcasting each literal to a column."""
    template = "".join("{}" if isinstance(p, pl.Expr) else p for p in pieces)
    values = [p.fill_null("") if ignore_nulls else p for p in pieces if isinstance(p, pl.Expr)]
    return pl.format(template, *values)


def _number(value: pl.Expr) -> pl.Expr:
    """The shortest decimal that reads back to the same float, ``3`` rather than ``3.0``."""
    return value.cast(pl.String).str.strip_suffix(".0")


def _error(ref: list[Piece], formula: str, error: str) -> pl.Expr:
    """The error cell xlsxwriter writes for NaN and the infinities (``nan_inf_to_errors``)."""
    return _joined([*ref, pl.col(ROW), f'" t="e"><f>{formula}</f><v>{error}</v></c>'], False)


def _unusual(name: str, dtype: pl.DataType) -> pl.Expr | None:
    """Whether a column's cells in a slice need more than its plain cell: a float NaN or
    infinite, a date before 1900-03-01. None for a column that never does."""
    value = pl.col(name)
    if dtype == pl.Date:
        return (value.min() < FIRST_TRUE_DAY).fill_null(False)
    if isinstance(dtype, pl.Datetime):
        return (value.dt.date().min() < FIRST_TRUE_DAY).fill_null(False)
    if dtype.is_float():
        return value.cast(pl.Float64).is_finite().not_().any()
    return None


def cell_pieces(
    name: str, dtype: pl.DataType, letter: str | pl.Expr, style: str = "", unusual: bool = False,
    nulls: bool = False, number_text: bool = False,
) -> list[Piece] | None:
    """One column's cells in a slice as pieces of each row's XML (``unusual``: as
    ``_unusual`` found the slice). A column with ``nulls`` in the slice is one piece, null
    where the cell is: its cell is left out of the row. None for a column with nothing to
    write. ``letter`` is the column's, or an expression of each cell's (the long form).
    ``number_text``: a text column of numbers written exactly (``ExportTable.number_columns``),
    whose cells are numbers all the same: a cell's value is its decimal text in the XML."""
    value = pl.col(name)
    row = pl.col(ROW)
    ref: list[Piece] = [f'<c r="{letter}'] if isinstance(letter, str) else ['<c r="', letter]
    if dtype == pl.Null:
        return None
    if number_text:
        return [
            pl.when(value == "NaN").then(_error(ref, "#NUM!", "#NUM!"))
            .when(value == "inf").then(_error(ref, "1/0", "#DIV/0!"))
            .when(value == "-inf").then(_error(ref, "-1/0", "#DIV/0!"))
            .otherwise(_joined([*ref, row, '"><v>', value, "</v></c>"], False))
        ]
    if dtype == pl.Boolean:
        pieces = [*ref, row, '" t="b"><v>', value.cast(pl.Int8).cast(pl.String), "</v></c>"]
    elif dtype == pl.Date:
        days = value.cast(pl.Int64) + EPOCH_SERIAL
        if unusual:
            days = pl.when(days > 60).then(days).otherwise(days - 1)
        pieces = [*ref, row, f'" s="{DATE_STYLE}"><v>', days.cast(pl.String), "</v></c>"]
    elif isinstance(dtype, pl.Datetime):
        local = value.dt.replace_time_zone(None) if dtype.time_zone else value
        micros = local.dt.epoch("us") + EPOCH_SERIAL * US_PER_DAY
        if unusual:
            micros = pl.when(micros >= 61 * US_PER_DAY).then(micros).otherwise(micros - US_PER_DAY)
        serial = _number(micros.cast(pl.Float64) / US_PER_DAY)
        pieces = [*ref, row, f'" s="{DATE_STYLE}"><v>', serial, "</v></c>"]
    elif dtype.is_integer() or dtype.is_decimal():  # their exact digits
        pieces = [*ref, row, '"><v>', value.cast(pl.String), "</v></c>"]
    elif dtype.is_numeric():
        number = value.cast(pl.Float64)
        pieces = [*ref, row, '"><v>', _number(number), "</v></c>"]
        if unusual:
            return [
                pl.when(number.is_finite()).then(_joined(pieces, False))
                .when(number.is_nan()).then(_error(ref, "#NUM!", "#NUM!"))
                .when(number > 0).then(_error(ref, "1/0", "#DIV/0!"))
                .when(number < 0).then(_error(ref, "-1/0", "#DIV/0!"))
            ]
    else:
        preserve = pl.when(value.str.contains(EDGE_SPACE)).then(pl.lit(' xml:space="preserve"')).otherwise(pl.lit(""))
        pieces = [*ref, row, f'"{style} t="inlineStr"><is><t', preserve, ">", value, "</t></is></c>"]
    return [_joined(pieces, False)] if nulls else pieces


def _is_text(dtype: pl.DataType) -> bool:
    return not (dtype in (pl.Null, pl.Boolean, pl.Date) or dtype.is_numeric() or isinstance(dtype, pl.Datetime))


def escaped(rows: pl.DataFrame, text: list[str]) -> pl.DataFrame:
    """The slice with its ``text`` columns as XML: cut to a cell's length, escaped, and
    empty text made null (xlsxwriter leaves it blank)."""
    if not text:
        return rows
    rows = rows.with_columns(pl.col(text).cast(pl.String))
    facts = rows.select(
        *(pl.col(n).str.len_chars().max().fill_null(0).alias(f"l{i}") for i, n in enumerate(text)),
        *(pl.col(n).str.contains("_x", literal=True).any().alias(f"x{i}") for i, n in enumerate(text)),
        *(pl.col(n).eq("").any().alias(f"e{i}") for i, n in enumerate(text)),
    ).row(0)
    longest, escapes, empties = facts[:len(text)], facts[len(text):2 * len(text)], facts[2 * len(text):]
    for name, chars in zip(text, longest):
        if chars > MAX_TEXT // 2:
            rows = truncate_text(rows, name)
    values = []
    for name, escaped_escapes, empty in zip(text, escapes, empties):
        value = escape_text(pl.col(name), escaped_escapes)
        values.append((pl.when(pl.col(name) != "").then(value) if empty else value).alias(name))
    return rows.with_columns(values)


def numbered(rows: pl.DataFrame, first_row: int) -> pl.DataFrame:
    """The slice with its worksheet row numbers, as text."""
    return rows.with_columns((pl.int_range(pl.len(), dtype=pl.Int64) + first_row).cast(pl.String).alias(ROW))


def slice_xml(
    rows: pl.DataFrame, first_row: int, style: str = "", numbers: frozenset[str] = frozenset()
) -> bytes:
    """A slice of rows as ``<row>`` elements, UTF-8; ``first_row`` is the slice's first
    worksheet row number (1-based). Each row is one ``pl.format`` of its cells; a slice wider
    than ``WIDE`` columns is written in the long form instead (``long_slice_xml``).
    ``numbers``: the text columns that hold numbers (``ExportTable.number_columns``)."""
    if rows.width > WIDE:
        return long_slice_xml(rows, first_row, style, numbers)
    schema = rows.schema
    checks = [e.alias(n) for n, t in schema.items() if (e := _unusual(n, t)) is not None]
    unusual = rows.select(checks).row(0, named=True) if checks else {}
    rows = numbered(
        escaped(rows, [n for n, t in schema.items() if _is_text(t) and n not in numbers]), first_row
    )
    nulls = rows.null_count().row(0, named=True)
    pieces: list[Piece] = ['<row r="', pl.col(ROW), '">']
    for i, (name, dtype) in enumerate(schema.items()):
        pieces += cell_pieces(
            name, dtype, column_letter(i), style, unusual.get(name, False), nulls[name] > 0,
            name in numbers,
        ) or []
    return rows.select(_joined([*pieces, "</row>"], True).str.join("").cast(pl.Binary)).item()


def long_slice_xml(
    rows: pl.DataFrame, first_row: int, style: str = "", numbers: frozenset[str] = frozenset()
) -> bytes:
    """The same XML from the long form: the columns of each type unpivoted to one cell per
    row, their cells built by one expression per type, then every cell and row tag sorted
    into place. Its cost does not grow with the number of columns, as one expression per
    column would (a sheet may have 16,384)."""
    schema = rows.schema
    position = {name: i for i, name in enumerate(schema)}
    rows = numbered(rows, first_row).with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(ROW_INDEX))
    kinds: dict[tuple[pl.DataType, bool], list[str]] = {}
    for name, dtype in schema.items():
        if dtype != pl.Null:
            kinds.setdefault((dtype, name in numbers), []).append(name)
    parts = [
        rows.select(pl.col(ROW_INDEX), pl.lit(-1, pl.Int64).alias(COLUMN_INDEX), pl.format('<row r="{}">', pl.col(ROW)).alias(XML)),
        rows.select(pl.col(ROW_INDEX), pl.lit(len(schema), pl.Int64).alias(COLUMN_INDEX), pl.lit("</row>").alias(XML)),
    ]
    for (dtype, number_text), names in kinds.items():
        long = rows.unpivot(on=names, index=[ROW, ROW_INDEX], variable_name=NAME, value_name=VALUE)
        long = escaped(long, [VALUE] if _is_text(dtype) and not number_text else [])
        check = _unusual(VALUE, dtype)
        unusual = check is not None and bool(long.select(check).item())
        letters = pl.col(NAME).replace_strict({n: column_letter(position[n]) for n in names}, return_dtype=pl.String)
        cell = cell_pieces(VALUE, dtype, letters, style, unusual, nulls=True, number_text=number_text)
        parts.append(long.select(
            pl.col(ROW_INDEX),
            pl.col(NAME).replace_strict({n: position[n] for n in names}, return_dtype=pl.Int64).alias(COLUMN_INDEX),
            cell[0].alias(XML),
        ).drop_nulls(XML))
    cells = pl.concat(parts).sort(ROW_INDEX, COLUMN_INDEX)
    return cells.select(pl.col(XML).str.join("").cast(pl.Binary)).item()


def header_row(headings: list[str]) -> bytes:
    """The headings, bold, as text cells."""
    frame = pl.DataFrame([pl.Series(f"h{i}", [h], pl.String) for i, h in enumerate(headings)])
    return long_slice_xml(frame, 1, f' s="{HEADER_STYLE}"')


SELECTED = ' tabSelected="1"'


def sheet_head(columns: int, rows: int, widths: list[int], selected: bool) -> str:
    last = f"{column_letter(columns - 1)}{rows + 1}" if columns else "A1"
    cols = "".join(
        f'<col min="{i + 1}" max="{i + 1}" width="{xml_width(w)}" customWidth="1"/>' for i, w in enumerate(widths)
    )
    return (
        f'{XML_HEAD}<worksheet xmlns="{MAIN_NS}" xmlns:r="{REL_NS}"><dimension ref="A1:{last}"/>'
        f'<sheetViews><sheetView{SELECTED if selected else ""} workbookViewId="0">'
        '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
        '<selection pane="bottomLeft"/></sheetView></sheetViews><sheetFormatPr defaultRowHeight="15"/>'
        + (f"<cols>{cols}</cols>" if cols else "") + "<sheetData>"
    )


SHEET_TAIL = (
    '</sheetData><pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" '
    'footer="0.3"/></worksheet>'
)


def styles(subdaily: bool) -> str:
    """Normal; bold with a thin bottom border (the header); the date format."""
    date_format = "yyyy-mm-dd hh:mm" if subdaily else "yyyy-mm-dd"
    font = '<sz val="11"/><name val="Calibri"/><family val="2"/>'
    return (
        f'{XML_HEAD}<styleSheet xmlns="{MAIN_NS}"><numFmts count="1"><numFmt numFmtId="164" '
        f'formatCode="{date_format}"/></numFmts><fonts count="2"><font>{font}</font><font><b/>{font}</font>'
        '</fonts><fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill '
        'patternType="gray125"/></fill></fills><borders count="2"><border><left/><right/><top/><bottom/>'
        '<diagonal/></border><border><left/><right/><top/><bottom style="thin"><color auto="1"/></bottom>'
        '<diagonal/></border></borders><cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" '
        'borderId="0"/></cellStyleXfs><cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" '
        'borderId="0" xfId="0"/><xf numFmtId="0" fontId="1" fillId="0" borderId="1" xfId="0" '
        'applyFont="1" applyBorder="1"/><xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" '
        'applyNumberFormat="1"/></cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" '
        'builtinId="0"/></cellStyles></styleSheet>'
    )


def package_parts(sheets: int, subdaily: bool, created: datetime) -> dict[str, str]:
    """Every part but the sheets themselves."""
    names = [sheet_name(s) for s in range(sheets)]
    sheet_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
    stamp = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "[Content_Types].xml": (
            f'{XML_HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/docProps/app.xml" ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>'
            '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
            '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            + "".join(f'<Override PartName="/xl/worksheets/sheet{s + 1}.xml" ContentType="{sheet_type}"/>' for s in range(sheets))
            + "</Types>"
        ),
        "_rels/.rels": (
            f'{XML_HEAD}<Relationships xmlns="{PKG_REL_NS}">'
            f'<Relationship Id="rId1" Type="{REL_NS}/officeDocument" Target="xl/workbook.xml"/>'
            '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" Target="docProps/core.xml"/>'
            f'<Relationship Id="rId3" Type="{REL_NS}/extended-properties" Target="docProps/app.xml"/>'
            "</Relationships>"
        ),
        "docProps/app.xml": (
            f'{XML_HEAD}<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties" '
            'xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes">'
            '<Application>Microsoft Excel</Application><HeadingPairs><vt:vector size="2" baseType="variant">'
            f'<vt:variant><vt:lpstr>Worksheets</vt:lpstr></vt:variant><vt:variant><vt:i4>{sheets}</vt:i4></vt:variant>'
            f'</vt:vector></HeadingPairs><TitlesOfParts><vt:vector size="{sheets}" baseType="lpstr">'
            + "".join(f"<vt:lpstr>{n}</vt:lpstr>" for n in names)
            + "</vt:vector></TitlesOfParts></Properties>"
        ),
        "docProps/core.xml": (
            f'{XML_HEAD}<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            f'<dcterms:created xsi:type="dcterms:W3CDTF">{stamp}</dcterms:created>'
            f'<dcterms:modified xsi:type="dcterms:W3CDTF">{stamp}</dcterms:modified></cp:coreProperties>'
        ),
        "xl/workbook.xml": (
            f'{XML_HEAD}<workbook xmlns="{MAIN_NS}" xmlns:r="{REL_NS}"><bookViews><workbookView/></bookViews><sheets>'
            + "".join(f'<sheet name="{n}" sheetId="{s + 1}" r:id="rId{s + 1}"/>' for s, n in enumerate(names))
            + '</sheets><calcPr calcId="124519" fullCalcOnLoad="1"/></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            f'{XML_HEAD}<Relationships xmlns="{PKG_REL_NS}">'
            + "".join(
                f'<Relationship Id="rId{s + 1}" Type="{REL_NS}/worksheet" Target="worksheets/sheet{s + 1}.xml"/>'
                for s in range(sheets)
            )
            + f'<Relationship Id="rId{sheets + 1}" Type="{REL_NS}/styles" Target="styles.xml"/></Relationships>'
        ),
        "xl/styles.xml": styles(subdaily),
    }


def sheet_size_bound(part: pl.DataFrame) -> int:
    """More bytes than the sheet's XML can take: whether its zip entry needs Zip64."""
    text = [n for n, t in part.schema.items() if t == pl.String]
    text_bytes = part.select(pl.sum_horizontal(pl.col(n).str.len_bytes().sum() for n in text)).item() if text else 0
    return (part.height + 1) * (part.width + 1) * LONGEST_CELL + 7 * (text_bytes or 0) + 4096


def iter_xlsx(
    table: ExportTable, max_rows: int = MAX_DATA_ROWS, cells_per_slice: int = CELLS_PER_SLICE
) -> Iterator[bytes]:
    """The workbook as consecutive byte chunks: the fixed parts and each slice of rows as it
    is deflated. A table too wide is refused here, before the first chunk."""
    refuse_too_wide(table)
    return _iter_xlsx(table, max_rows, rows_per_slice(len(table.headings), cells_per_slice))


def slices(part: pl.DataFrame, step: int) -> Iterator[tuple[pl.DataFrame, int]]:
    """A sheet's rows in slices of ``step``, each with its first worksheet row number."""
    for offset in range(0, part.height, step):
        yield part.slice(offset, step), offset + 2


def _iter_xlsx(table: ExportTable, max_rows: int, step: int) -> Iterator[bytes]:
    frame = typed_frame(table)
    numbers = frozenset(table.number_columns)
    widths = column_widths(frame, table.headings)
    sheets = sheet_count(frame.height, max_rows)
    header = header_row(table.headings)
    package = ZipStream()
    for name, text in package_parts(sheets, table.subdaily, datetime.now(UTC)).items():
        package.add(name, text.encode("utf-8"))
    # One worker builds the next slice's XML (polars, off the GIL) while this thread deflates
    # the current one (ISA-L, off the GIL too): at most two slices are held at once.
    with ThreadPoolExecutor(1, thread_name_prefix="xlsx-slice") as worker:
        for s in range(sheets):
            part = frame.slice(s * max_rows, max_rows)
            zip64 = sheet_size_bound(part) > package.limit
            with package.entry(f"xl/worksheets/sheet{s + 1}.xml", zip64) as entry:
                entry.write(sheet_head(frame.width, part.height, widths, s == 0).encode("utf-8") + header)
                pending = None
                for rows, first in slices(part, step):
                    upcoming = worker.submit(slice_xml, rows, first, "", numbers)
                    if pending is not None:
                        entry.write(pending.result())
                        yield package.take()
                    pending = upcoming
                if pending is not None:
                    entry.write(pending.result())
                entry.write(SHEET_TAIL.encode("utf-8"))
            yield package.take()
    package.close()
    yield package.take()


def write_xlsx(table: ExportTable, path: str | Path, max_rows: int = MAX_DATA_ROWS) -> int:
    """Write the workbook to ``path``; returns the number of sheets."""
    chunks = iter_xlsx(table, max_rows)
    with open(path, "wb") as out:
        out.writelines(chunks)
    return sheet_count(table.rows, max_rows)
