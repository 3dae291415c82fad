"""The export as a branded PDF report: built with reportlab, charts with matplotlib.

Sections: a cover (workspace or report name, the date range, when it was generated), an
executive summary strip of KPIs, a breakdown table per dimension, a share-of-total chart, the
top entities, an optional comparison with the previous period of equal length, and an
appendix with the filters, the exact range, the time zone and the units. A report summarises:
however large the export, it holds totals and the top rows (``TOP_ROWS``), never the table.
Branding (a name, a logo image, two colours) comes from the deployment (``ReportBranding``),
not from the request.

Any table a CSV export can hold makes a report: negative totals (refunds, net flows) are
compared as bars, since a donut cannot show a negative share; a zero or empty total leaves the
chart out with a line saying why; NaN and empty cells print as ``–``. Text prints exactly as
stored (see ``pdf_text``).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, localcontext
from pathlib import Path

import polars as pl
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (
    Image,
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from export_pipeline.contract.models import DecimationFunction, ExportRequest
from export_pipeline.formats.branding import Branding
from export_pipeline.formats.pdf_text import BASE, BOLD, markup, register, visible
from export_pipeline.store.source import decimals_hold, exact_sum, wide_sum, wide_totals
from export_pipeline.table.model import ExportTable, column_name
from export_pipeline.timeline.periods import zone

CONTENT_TYPE = "application/pdf"
TOP_ROWS = 10
DONUT_SLICES = 6
BAR_ROWS = 8
MAX_BREAKDOWNS = 4
MAX_KPIS = 6
EMPTY = "–"


@dataclass(frozen=True)
class _Metric:
    name: str  # internal column
    heading: str
    measure: str
    function: DecimationFunction

    @property
    def additive(self) -> bool:
        return self.function is DecimationFunction.sum

    def total(self, frame: pl.DataFrame) -> pl.Expr:
        """A column's headline number: the sum (exact, in the adding type of ``sum_types``: a
        total past Int64 is shown, not wrapped), or for a non-sum decimation the mean cell."""
        column = pl.col(self.name)
        return exact_sum(column, frame.schema[self.name]) if self.additive else column.mean()


def _metrics(request: ExportRequest) -> list[_Metric]:
    by_id = {m.metric_id: m for m in request.metric_requests}
    return [
        _Metric(column_name(i), c.heading, c.fetch_value or "", by_id[c.metric_id].decimation_function(c))
        for i, c in enumerate(request.csv_format.columns) if c.is_metric
    ]


def _dimensions(request: ExportRequest) -> list[tuple[str, str]]:
    return [
        (column_name(i), c.heading) for i, c in enumerate(request.csv_format.columns)
        if not c.is_metric and c.dimension_name != "date"
    ]


def _finite(value) -> bool:
    if isinstance(value, Decimal):
        return value.is_finite()
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return EMPTY
    if isinstance(value, Decimal):  # its own digits, as the files hold it
        return f"{value:,}"
    if isinstance(value, float) and not math.isfinite(value):
        return "∞" if value > 0 else "−∞"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def _change(current, previous) -> str:
    if not _finite(current) or not _finite(previous) or previous == 0:
        return EMPTY
    return f"{(current - previous) / abs(previous) * 100:+.1f}%"


def _pyplot():
    """matplotlib's pyplot, imported on the first chart: every run imports this module (the
    deployment's ``Branding``), and pyplot is costly to import."""
    import matplotlib

    matplotlib.use("Agg")  # no display: render to PNG in memory
    import matplotlib.pyplot as plt

    return plt


def _png(figure) -> Image:
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=160, bbox_inches="tight", transparent=False)
    _pyplot().close(figure)
    out.seek(0)
    width, height = figure.get_size_inches()
    return Image(out, width=width * 25.4 * mm * 0.9, height=height * 25.4 * mm * 0.9)


class _Styles:
    def __init__(self, branding: Branding):
        register()
        base = getSampleStyleSheet()
        self.primary = colors.HexColor(branding.primary_color)
        self.accent = colors.HexColor(branding.accent_color)

        def style(name: str, parent: str, **kw) -> ParagraphStyle:
            kw.setdefault("fontName", BASE)
            return ParagraphStyle(name, parent=base[parent], **kw)

        self.title = style("t", "Title", fontName=BOLD, fontSize=26, leading=32, textColor=self.primary)
        self.subtitle = style("s", "Normal", fontSize=13, leading=18, alignment=TA_CENTER)
        self.h1 = style("h1", "Heading1", fontName=BOLD, textColor=self.primary, spaceBefore=6)
        self.h2 = style("h2", "Heading2", fontName=BOLD, textColor=self.primary)
        self.body = style("b", "BodyText")
        self.small = style("sm", "BodyText", fontSize=8, leading=10)
        self.cell = style("c", "BodyText", fontSize=8, leading=10, alignment=TA_LEFT)
        self.head = style("hd", "BodyText", fontName=BOLD, fontSize=8, leading=10, textColor=colors.white)
        self.footer = style("f", "Normal", fontSize=7.5, leading=9, textColor=colors.HexColor("#667085"))
        self.kpi_value = style("kv", "Normal", fontName=BOLD, fontSize=15, leading=19,
                               alignment=TA_CENTER, textColor=self.primary)
        self.kpi_label = style("kl", "Normal", fontSize=8, leading=10, alignment=TA_CENTER)

    def text(self, value, style: ParagraphStyle | None = None) -> Paragraph:
        """A cell or line showing ``value`` exactly as stored."""
        return Paragraph(markup(value), style or self.cell)

    def table(self, header: list[str], rows: list[list], widths=None, total_row: bool = False,
              text_columns: int = 1) -> Table:
        """A table: headings and text cells as paragraphs (any script), numbers as plain text."""
        data = [[self.text(h, self.head) for h in header]]
        data += [[self.text(v) if isinstance(v, str) and i < text_columns else v for i, v in enumerate(r)]
                 for r in rows]
        table = Table(data, colWidths=widths, repeatRows=1, hAlign="LEFT")
        style = [
            ("ALIGN", (text_columns, 0), (-1, -1), "RIGHT"),
            ("BACKGROUND", (0, 0), (-1, 0), self.primary),
            ("FONTNAME", (0, 0), (-1, -1), BASE),
            ("FONTSIZE", (0, 0), (-1, -1), 8),
            ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#F3F5F8")]),
            ("LINEBELOW", (0, 0), (-1, 0), 0.8, self.accent),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ]
        if total_row:
            style += [("FONTNAME", (0, -1), (-1, -1), BOLD),
                      ("LINEABOVE", (0, -1), (-1, -1), 0.6, self.primary)]
        table.setStyle(TableStyle(style))
        return table


@dataclass(frozen=True)
class _Report:
    """What every section reads: the request, the table and the numbers computed once."""

    request: ExportRequest
    table: ExportTable
    request_id: str
    branding: Branding
    styles: _Styles
    metrics: list[_Metric]
    dimensions: list[tuple[str, str]]
    date_column: str | None
    totals: dict[str, float | None]
    previous_totals: dict[str, float | None] | None
    generated_at: datetime

    @property
    def frame(self) -> pl.DataFrame:
        return self.table.frame

    @property
    def title(self) -> str:
        if self.request.format.title:
            return self.request.format.title
        names = [m.name for m in self.request.metric_requests if m.name]
        return names[0] if len(names) == 1 else f"Export {self.request_id}"


def _range_text(request: ExportRequest) -> tuple[str, str]:
    tz = zone(request.timezone)
    start = min(m.start for m in request.metric_requests).astimezone(tz)
    end = max(m.end for m in request.metric_requests).astimezone(tz)
    return start.strftime("%Y-%m-%d %H:%M"), end.strftime("%Y-%m-%d %H:%M")


def _totals(frame: pl.DataFrame, metrics: list[_Metric]) -> dict[str, float | None]:
    """Headline numbers; with no value to add up they are empty (shown as –), never 0."""
    if not metrics:
        return {}
    if frame.height == 0:
        return {m.name: None for m in metrics}
    return _aggregated(frame, [], metrics).row(0, named=True)


def _breakdown(frame: pl.DataFrame, dimension: str, metrics: list[_Metric]) -> pl.DataFrame:
    lead = metrics[0].name
    return _aggregated(frame, [dimension], metrics).sort(
        [lead, dimension], descending=[True, False], nulls_last=True
    )


def _aggregated(frame: pl.DataFrame, by: list[str], metrics: list[_Metric]) -> pl.DataFrame:
    """Each metric's ``total`` over ``frame`` (per ``by``). A decimal total that could pass 38
    digits is added wide, and one that does fails the report (``source.wide_totals``)."""
    additive = [m.name for m in metrics if m.additive]
    wide = {} if decimals_hold(frame, additive) else {
        n: frame.schema[n].scale for n in additive if frame.schema[n].is_decimal()
    }
    totals = [
        e for m in metrics
        for e in (wide_sum(pl.col(m.name), m.name) if m.name in wide else [m.total(frame).alias(m.name)])
    ]
    out = frame.group_by(by).agg(totals) if by else frame.select(totals)
    names = {m.name: f"column '{m.heading}'" for m in metrics}
    return wide_totals(out, wide, names, by).select(*by, *(m.name for m in metrics)) if wide else out


def _label(value) -> str:
    return "(empty)" if value is None else str(value)


def _cover(report: _Report) -> list:
    styles, branding = report.styles, report.branding
    start_text, end_text = _range_text(report.request)
    story: list = [Spacer(1, 40 * mm)]
    if branding.logo_path and Path(branding.logo_path).is_file():
        logo = Image(branding.logo_path)
        ratio = logo.imageHeight / logo.imageWidth
        logo.drawWidth, logo.drawHeight = 50 * mm, 50 * mm * ratio
        story += [logo, Spacer(1, 10 * mm)]
    if branding.name:
        story += [styles.text(branding.name, styles.subtitle), Spacer(1, 4 * mm)]
    story += [
        styles.text(report.title, styles.title),
        Spacer(1, 6 * mm),
        styles.text(f"{start_text} to {end_text} ({report.request.timezone})", styles.subtitle),
        Spacer(1, 3 * mm),
        styles.text(
            f"Generated {report.generated_at.astimezone(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} · "
            f"request {report.request_id} · {report.table.rows:,} rows", styles.subtitle),
        PageBreak(),
    ]
    return story


def _kpi_strip(report: _Report) -> Table:
    styles = report.styles
    shown = report.metrics[:MAX_KPIS]
    values = [Paragraph(_number(report.totals[m.name]), styles.kpi_value) for m in shown]
    labels = []
    for m in shown:
        label = markup(m.heading) + ("" if m.additive else f" ({m.function.value}, mean per bucket)")
        if report.previous_totals is not None:
            label += f"<br/>vs previous: {_change(report.totals[m.name], report.previous_totals[m.name])}"
        labels.append(Paragraph(label, styles.kpi_label))
    width = 180 * mm / len(shown)
    strip = Table([values, labels], colWidths=[width] * len(shown))
    strip.setStyle(TableStyle([
        ("BOX", (0, 0), (-1, -1), 0.8, styles.primary),
        ("INNERGRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#D0D5DD")),
        ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#F7F9FC")),
        ("LINEABOVE", (0, 0), (-1, 0), 3, styles.accent),
        ("TOPPADDING", (0, 0), (-1, -1), 6), ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
    ]))
    return strip


def _trend(report: _Report, metric: _Metric) -> Image:
    date = report.date_column
    series = report.frame.group_by(date).agg(metric.total(report.frame).alias("v")).sort(date)
    values = [float(v) if v is not None else math.nan for v in series["v"].to_list()]
    labels = [visible(_label(d)) for d in series[date].to_list()]
    figure, axis = _pyplot().subplots(figsize=(7.2, 2.4))
    axis.plot(range(series.height), values, color=report.branding.primary_color, linewidth=1.6,
              marker="o" if series.height == 1 else None)
    axis.set_title(visible(f"{metric.heading} per bucket"), fontsize=10)
    ticks = list(range(0, series.height, max(1, -(-series.height // 6))))
    axis.set_xticks(ticks, [labels[i] for i in ticks], fontsize=7, rotation=20)
    axis.tick_params(axis="y", labelsize=7)
    axis.spines[["top", "right"]].set_visible(False)
    axis.grid(axis="y", alpha=0.3)
    return _png(figure)


def _summary(report: _Report) -> list:
    styles = report.styles
    story: list = [Paragraph("Executive summary", styles.h1)]
    if not report.metrics:
        return story + [Paragraph("This export has no metric columns.", styles.body)]
    story += [_kpi_strip(report), Spacer(1, 6 * mm)]
    if not report.frame.height:
        story.append(Paragraph("No data in the requested range.", styles.body))
    elif report.date_column is not None:
        story.append(_trend(report, report.metrics[0]))
    return story


def _palette(branding: Branding) -> list[str]:
    return [branding.primary_color, branding.accent_color, "#4C9A8C", "#8E6CB0", "#C9B037", "#6B8FB8", "#B0B7C3"]


def _donut(labels: list[str], values: list[float], total: float, branding: Branding, title: str) -> Image:
    labels, title = [visible(label) for label in labels], visible(title)
    figure, axis = _pyplot().subplots(figsize=(6.2, 3.4))
    wedges, _ = axis.pie(values, colors=_palette(branding)[: len(values)], startangle=90, counterclock=False,
                         wedgeprops={"width": 0.38, "edgecolor": "white"})
    axis.text(0, 0, f"{_number(total)}\ntotal", ha="center", va="center", fontsize=10)
    legend = [f"{label[:34]}  {v / total * 100:.1f}%" for label, v in zip(labels, values)]
    axis.legend(wedges, legend, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    axis.set_title(title, fontsize=10)
    axis.axis("equal")
    return _png(figure)


def _bars(labels: list[str], values: list[float], branding: Branding, title: str) -> Image:
    """Signed totals side by side: what a donut cannot show when some are negative."""
    labels, title = [visible(label) for label in labels], visible(title)
    figure, axis = _pyplot().subplots(figsize=(6.2, 0.5 + 0.32 * len(values)))
    positions = list(range(len(values)))[::-1]
    shades = [branding.primary_color if v >= 0 else branding.accent_color for v in values]
    axis.barh(positions, values, color=shades)
    axis.set_yticks(positions, [label[:34] for label in labels], fontsize=7)
    axis.axvline(0, color="#667085", linewidth=0.8)
    axis.tick_params(axis="x", labelsize=7)
    axis.spines[["top", "right"]].set_visible(False)
    axis.set_title(title, fontsize=10)
    return _png(figure)


def _share_chart(report: _Report, breakdown: pl.DataFrame, dimension: str, heading: str) -> list:
    """The first breakdown's chart: a donut of shares when every total is positive, bars when
    some are negative, and a line saying why when there is nothing to chart."""
    styles, lead = report.styles, report.metrics[0]
    total = report.totals[lead.name]
    charted = breakdown.filter(pl.col(lead.name).is_not_null() & pl.col(lead.name).cast(pl.Float64).is_finite())
    values = [float(v) for v in charted[lead.name].to_list()]
    title = f"{lead.heading} by {heading}"
    if not values or not _finite(total):
        reason = "no total to chart" if not values else f"the total of {lead.heading} is not a finite number"
        return [Paragraph(f"No share chart: {markup(reason)}.", styles.body)]
    if min(values) < 0:
        top = charted.sort(pl.col(lead.name).abs(), descending=True).head(BAR_ROWS)
        chart = _bars([_label(v) for v in top[dimension].to_list()],
                      [float(v) for v in top[lead.name].to_list()], report.branding, title)
        note = "Some totals are negative, so they are compared as bars rather than as shares of the total."
        return [KeepTogether([styles.text(f"{lead.heading} by {heading}", styles.h2),
                              Paragraph(note, styles.small), chart])]
    if total <= 0:
        return [Paragraph(f"No share chart: the total of {markup(lead.heading)} is zero.", styles.body)]
    top = charted.head(DONUT_SLICES)
    labels = [_label(v) for v in top[dimension].to_list()]
    shares = [float(v) for v in top[lead.name].to_list()]
    other = float(total) - sum(shares)
    if breakdown.height > DONUT_SLICES and other > 0:
        labels.append(f"Other ({breakdown.height - DONUT_SLICES})")
        shares.append(other)
    return [KeepTogether([styles.text(f"Share of total {lead.heading}", styles.h2),
                          _donut(labels, shares, float(total), report.branding, title)])]


def _breakdowns(report: _Report) -> list:
    """A table per dimension column (top rows, a count of the rest, a total row), with the
    share chart of the first."""
    if not report.metrics:
        return []
    styles, metrics, lead = report.styles, report.metrics, report.metrics[0]
    lead_total = report.totals[lead.name]
    shares = lead.additive
    story: list = []
    for index, (dimension, heading) in enumerate(report.dimensions[:MAX_BREAKDOWNS]):
        breakdown = _breakdown(report.frame, dimension, metrics)
        header = [heading] + [m.heading for m in metrics] + ([f"Share of {lead.heading}"] if shares else [])
        rows = []
        for record in breakdown.head(TOP_ROWS * 2).iter_rows(named=True):
            cells = [_label(record[dimension])] + [_number(record[m.name]) for m in metrics]
            if shares:
                value = record[lead.name]
                cells.append(f"{value / lead_total * 100:.1f}%"
                             if _finite(value) and _finite(lead_total) and lead_total else EMPTY)
            rows.append(cells)
        rest = breakdown.height - TOP_ROWS * 2
        if rest > 0:
            rows.append([f"{rest:,} more"] + [""] * (len(header) - 1))
        total_share = ["100.0%" if _finite(lead_total) and lead_total else EMPTY] if shares else []
        rows.append(["Total"] + [_number(report.totals[m.name]) for m in metrics] + total_share)
        story.append(KeepTogether([styles.text(f"Breakdown by {heading}", styles.h1), Spacer(1, 2 * mm)]))
        story.append(styles.table(header, rows, total_row=True))
        if index == 0 and shares:
            story.append(Spacer(1, 4 * mm))
            story += _share_chart(report, breakdown, dimension, heading)
    return story


def _top_rows(report: _Report) -> list:
    """The top entities by the first metric, or the top rows when there is no entity column."""
    if not report.metrics or not report.frame.height:
        return []
    styles, metrics, lead = report.styles, report.metrics, report.metrics[0]
    columns = report.request.csv_format.columns
    entity = next((d for d in report.dimensions if d[1].strip().lower() in ("entity", "store", "location")
                   or columns[int(d[0][1:])].dimension_name == "entity"), None)
    story: list = [styles.text(f"Top {TOP_ROWS} by {lead.heading}", styles.h1)]
    if entity is not None:
        top = _breakdown(report.frame, entity[0], metrics).head(TOP_ROWS)
        header = ["#", entity[1]] + [m.heading for m in metrics]
        rows = [[str(rank), _label(record[entity[0]])] + [_number(record[m.name]) for m in metrics]
                for rank, record in enumerate(top.iter_rows(named=True), 1)]
        return story + [styles.table(header, rows, text_columns=2)]
    top = report.frame.sort(lead.name, descending=True, nulls_last=True).head(TOP_ROWS)
    header = ["#"] + report.table.headings
    rows = [[str(rank)] + [_number(v) if isinstance(v, int | float | Decimal) else _label(v)
                           for v in record]
            for rank, record in enumerate(top.iter_rows(), 1)]
    numeric = {i + 1 for i, dtype in enumerate(top.dtypes) if dtype.is_numeric()}
    table = styles.table(header, [[styles.text(v) if i and i not in numeric else v for i, v in enumerate(r)]
                                  for r in rows], text_columns=1)
    return story + [table]


def _comparison(report: _Report) -> list:
    if report.previous_totals is None or not report.metrics:
        return []
    styles, first = report.styles, report.request.metric_requests[0]
    length = first.end - first.start
    days = length.days + (1 if length.seconds or length.microseconds else 0)
    rows = []
    for m in report.metrics:
        now, before = report.totals[m.name], report.previous_totals[m.name]
        with localcontext(prec=100):  # a difference of decimals, exact
            delta = (now - before) if now is not None and before is not None else None
        rows.append([m.heading, _number(now), _number(before), _number(delta), _change(now, before)])
    return [
        Paragraph("Comparison with the previous period", styles.h1),
        Paragraph(f"The {days} days before the report's range, same filters.", styles.body),
        Spacer(1, 2 * mm),
        styles.table(["Metric", "This period", "Previous period", "Change", "Change %"], rows),
    ]


def _appendix(report: _Report) -> list:
    styles, request = report.styles, report.request
    tz = zone(request.timezone)
    story: list = [PageBreak(), Paragraph("Appendix", styles.h1), Paragraph("Date range", styles.h2)]
    for m in request.metric_requests:
        label = markup(m.metric_id or m.name or "metric request")
        story.append(Paragraph(
            f"<b>{label}</b>: {m.start.isoformat()} to {m.end.isoformat()} (UTC, both inclusive); "
            f"{m.start.astimezone(tz).isoformat()} to {m.end.astimezone(tz).isoformat()} local", styles.small))
    story.append(Paragraph("Time zone", styles.h2))
    story.append(styles.text(
        f"{request.timezone}: buckets are cut in this time zone (a day is a local day).", styles.body))
    story.append(Paragraph("Filters", styles.h2))
    for m in request.metric_requests:
        parts = []
        if m.entities:
            shown = ", ".join(m.entities[:5]) + (f" and {len(m.entities) - 5} more" if len(m.entities) > 5 else "")
            parts.append(f"entities: {shown}")
        if m.entity_type:
            parts.append(f"entity type: {m.entity_type}")
        if m.facets:
            parts.append(f"facets: {', '.join(m.facets)}")
        story.append(Paragraph(
            f"<b>{markup(m.metric_id or m.name or 'metric request')}</b>: "
            + markup("; ".join(parts) or "all entities"), styles.small))
    for c in request.csv_format.columns:
        if c.filter:
            text = "; ".join(f"{k} = {' or '.join(v)}" for k, v in c.filter_values().items())
            story.append(Paragraph(f"<b>{markup(c.heading)}</b>: {markup(text)}", styles.small))
    story.append(Paragraph("Units", styles.h2))
    by_id = {m.metric_id: m for m in request.metric_requests}
    rows = []
    for c in request.csv_format.columns:
        if c.is_metric:
            m = by_id[c.metric_id]
            function = m.decimation_function(c).value
            if m.transform is not None:
                function += f", then {m.transform.value}"
            rows.append([c.heading, c.fetch_value or "", function, m.granularity.label])
    story.append(styles.table(["Column", "Measure", "Per bucket", "Bucket"], rows, text_columns=4))
    return story


def _page_decoration(report: _Report):
    """The coloured band at the top of every page and the footer (brand, title, page)."""
    styles = report.styles
    footer = " · ".join(x for x in (report.branding.name, report.title) if x)
    footer = footer if len(footer) <= 110 else footer[:109] + "…"

    def decorate(canvas, doc):
        canvas.saveState()
        width, height = A4
        canvas.setFillColor(styles.primary)
        canvas.rect(0, height - 8 * mm, width, 8 * mm, stroke=0, fill=1)
        canvas.setFillColor(styles.accent)
        canvas.rect(0, height - 9.2 * mm, width, 1.2 * mm, stroke=0, fill=1)
        line = styles.text(footer, styles.footer)
        line.wrapOn(canvas, width - 60 * mm, 10 * mm)
        line.drawOn(canvas, 15 * mm, 6.5 * mm)
        canvas.setFillColor(colors.HexColor("#667085"))
        canvas.setFont(BASE, 7.5)
        canvas.drawRightString(width - 15 * mm, 8 * mm, f"Page {doc.page}")
        canvas.restoreState()

    return decorate


def render_pdf(
    request: ExportRequest,
    table: ExportTable,
    *,
    request_id: str,
    branding: Branding = Branding(),
    previous: ExportTable | None = None,
    generated_at: datetime | None = None,
) -> bytes:
    """The report as PDF bytes (a summary: its size does not grow with the export's rows)."""
    metrics = _metrics(request)
    report = _Report(
        request=request, table=table, request_id=request_id, branding=branding,
        styles=_Styles(branding), metrics=metrics, dimensions=_dimensions(request),
        date_column=next((column_name(i) for i, c in enumerate(request.csv_format.columns)
                          if not c.is_metric and c.dimension_name == "date"), None),
        totals=_totals(table.frame, metrics),
        previous_totals=_totals(previous.frame, metrics) if previous is not None else None,
        generated_at=generated_at or datetime.now(timezone.utc),
    )
    story = (_cover(report) + _summary(report) + _breakdowns(report) + _top_rows(report)
             + _comparison(report) + _appendix(report))
    out = io.BytesIO()
    document = SimpleDocTemplate(
        out, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=18 * mm,
        bottomMargin=16 * mm, title=report.title, author=branding.name or "export_pipeline",
        subject=f"export {request_id}",
    )
    decorate = _page_decoration(report)
    document.build(story, onFirstPage=decorate, onLaterPages=decorate)
    return out.getvalue()
