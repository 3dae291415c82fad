"""The export as a branded PDF report (seed 002): built with reportlab, charts with matplotlib.

Sections: a cover (workspace or report name, the date range, when it was generated), an
executive summary strip of KPIs, a breakdown table per dimension, a share-of-total donut, the
top entities, an optional comparison with the previous period of equal length, and an
appendix with the filters, the exact range, the time zone and the units. A report summarises:
however large the export, it holds totals and the top rows (``TOP_ROWS``), never the table.
Branding (a name, a logo image, two colours) comes from the deployment (``ReportBranding``),
not from the request.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import escape

import polars as pl
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
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

from export_pipeline.formats.branding import Branding
from export_pipeline.table.model import ExportTable, column_name
from export_pipeline.store.source import sum_or_null
from export_pipeline.timeline.periods import zone
from export_pipeline.contract.models import DecimationFunction, ExportRequest

CONTENT_TYPE = "application/pdf"
TOP_ROWS = 10
DONUT_SLICES = 6
MAX_BREAKDOWNS = 4
MAX_KPIS = 6


@dataclass(frozen=True)
class _Metric:
    name: str  # internal column
    heading: str
    measure: str
    function: DecimationFunction

    @property
    def additive(self) -> bool:
        return self.function is DecimationFunction.sum

    def total(self) -> pl.Expr:
        """A column's headline number: the sum, or for a non-sum decimation the mean cell."""
        return sum_or_null(pl.col(self.name)) if self.additive else pl.col(self.name).mean()


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


def _number(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def _change(current, previous) -> str:
    if current is None or previous in (None, 0):
        return "–"
    return f"{(current - previous) / abs(previous) * 100:+.1f}%"


def _pyplot():
    """matplotlib's pyplot, imported on the first chart: every run imports this module (the
    deployment's ``Branding``), and pyplot alone costs about 0.35 s of start-up."""
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
        base = getSampleStyleSheet()
        self.primary = colors.HexColor(branding.primary_color)
        self.accent = colors.HexColor(branding.accent_color)
        self.title = ParagraphStyle("t", parent=base["Title"], fontSize=26, leading=32, textColor=self.primary)
        self.subtitle = ParagraphStyle("s", parent=base["Normal"], fontSize=13, leading=18, alignment=TA_CENTER)
        self.h1 = ParagraphStyle("h1", parent=base["Heading1"], textColor=self.primary, spaceBefore=6)
        self.h2 = ParagraphStyle("h2", parent=base["Heading2"], textColor=self.primary)
        self.body = base["BodyText"]
        self.small = ParagraphStyle("sm", parent=base["BodyText"], fontSize=8, leading=10)
        self.kpi_value = ParagraphStyle("kv", parent=base["Normal"], fontSize=15, leading=19,
                                        alignment=TA_CENTER, textColor=self.primary, fontName="Helvetica-Bold")
        self.kpi_label = ParagraphStyle("kl", parent=base["Normal"], fontSize=8, leading=10, alignment=TA_CENTER)

    def table(self, data: list[list], widths=None, total_row: bool = False, text_columns: int = 1) -> Table:
        table = Table(data, colWidths=widths, repeatRows=1, hAlign="LEFT")
        style = [
            ("ALIGN", (text_columns, 0), (-1, -1), "RIGHT"),
            ("BACKGROUND", (0, 0), (-1, 0), self.primary),
            ("TEXTCOLOR", (0, 0), (-1, 0), colors.white),
            ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
            ("FONTSIZE", (0, 0), (-1, -1), 8),
            ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#F3F5F8")]),
            ("LINEBELOW", (0, 0), (-1, 0), 0.8, self.accent),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ]
        if total_row:
            style += [("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold"),
                      ("LINEABOVE", (0, -1), (-1, -1), 0.6, self.primary)]
        table.setStyle(TableStyle(style))
        return table


def _title(request: ExportRequest, branding: Branding, request_id: str) -> str:
    if request.format.title:
        return request.format.title
    names = [m.name for m in request.metric_requests if m.name]
    return names[0] if len(names) == 1 else f"Export {request_id}"


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
    row = frame.select(m.total().alias(m.name) for m in metrics).row(0, named=True)
    return row


def _breakdown(frame: pl.DataFrame, dimension: str, metrics: list[_Metric]) -> pl.DataFrame:
    lead = metrics[0].name
    return (
        frame.group_by(dimension)
        .agg(m.total().alias(m.name) for m in metrics)
        .sort([lead, dimension], descending=[True, False], nulls_last=True)
    )


def _donut(labels: list[str], values: list[float], styles: _Styles, branding: Branding, title: str):
    palette = [branding.primary_color, branding.accent_color, "#4C9A8C", "#8E6CB0", "#C9B037", "#6B8FB8", "#B0B7C3"]
    figure, axis = _pyplot().subplots(figsize=(6.2, 3.4))
    wedges, _ = axis.pie(values, colors=palette[: len(values)], startangle=90, counterclock=False,
                         wedgeprops={"width": 0.38, "edgecolor": "white"})
    total = sum(values)
    axis.text(0, 0, f"{_number(total)}\ntotal", ha="center", va="center", fontsize=10)
    legend = [f"{label[:34]}  {v / total * 100:.1f}%" for label, v in zip(labels, values)]
    axis.legend(wedges, legend, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    axis.set_title(title, fontsize=10)
    axis.axis("equal")
    return _png(figure)


def _trend(frame: pl.DataFrame, date: str, metric: _Metric, branding: Branding):
    series = frame.group_by(date).agg(metric.total().alias("v")).sort(date)
    figure, axis = _pyplot().subplots(figsize=(7.2, 2.4))
    axis.plot(series[date].to_list(), series["v"].to_list(), color=branding.primary_color, linewidth=1.6)
    axis.set_title(f"{metric.heading} per bucket", fontsize=10)
    ticks = list(range(0, series.height, max(1, -(-series.height // 6))))
    axis.set_xticks([series[date][i] for i in ticks], [series[date][i] for i in ticks], fontsize=7, rotation=20)
    axis.tick_params(axis="y", labelsize=7)
    axis.spines[["top", "right"]].set_visible(False)
    axis.grid(axis="y", alpha=0.3)
    return _png(figure)


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
    generated_at = generated_at or datetime.now(timezone.utc)
    styles = _Styles(branding)
    frame = table.frame
    metrics = _metrics(request)
    dimensions = _dimensions(request)
    date_column = next(
        (column_name(i) for i, c in enumerate(request.csv_format.columns)
         if not c.is_metric and c.dimension_name == "date"), None
    )
    totals = _totals(frame, metrics)
    previous_totals = _totals(previous.frame, metrics) if previous is not None else None
    start_text, end_text = _range_text(request)
    story: list = []

    # Cover
    story.append(Spacer(1, 40 * mm))
    if branding.logo_path and Path(branding.logo_path).is_file():
        logo = Image(branding.logo_path)
        ratio = logo.imageHeight / logo.imageWidth
        logo.drawWidth, logo.drawHeight = 50 * mm, 50 * mm * ratio
        story += [logo, Spacer(1, 10 * mm)]
    if branding.name:
        story.append(Paragraph(escape(branding.name), styles.subtitle))
        story.append(Spacer(1, 4 * mm))
    story.append(Paragraph(escape(_title(request, branding, request_id)), styles.title))
    story.append(Spacer(1, 6 * mm))
    story.append(Paragraph(f"{escape(start_text)} to {escape(end_text)} ({escape(request.timezone)})", styles.subtitle))
    story.append(Spacer(1, 3 * mm))
    story.append(Paragraph(
        f"Generated {generated_at.astimezone(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} · "
        f"request {escape(request_id)} · {table.rows:,} rows", styles.subtitle))
    story.append(PageBreak())

    # Executive summary
    story.append(Paragraph("Executive summary", styles.h1))
    if metrics:
        shown = metrics[:MAX_KPIS]
        values = [Paragraph(_number(totals[m.name]), styles.kpi_value) for m in shown]
        labels = []
        for m in shown:
            label = escape(m.heading) + ("" if m.additive else f" ({m.function.value}, mean per bucket)")
            if previous_totals is not None:
                label += f"<br/>vs previous: {_change(totals[m.name], previous_totals[m.name])}"
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
        story += [strip, Spacer(1, 6 * mm)]
        if date_column is not None and frame.height:
            story.append(_trend(frame, date_column, metrics[0], branding))
        elif not frame.height:
            story.append(Paragraph("No data in the requested range.", styles.body))
    else:
        story.append(Paragraph("This export has no metric columns.", styles.body))

    # Breakdown per dimension, with the share-of-total donut of the first
    for index, (dimension, heading) in enumerate(dimensions[:MAX_BREAKDOWNS]):
        if not metrics:
            break
        breakdown = _breakdown(frame, dimension, metrics)
        lead = metrics[0]
        lead_total = totals[lead.name] or 0
        header = [heading] + [m.heading for m in metrics] + ([f"Share of {lead.heading}"] if lead.additive else [])
        rows = [header]
        for record in breakdown.head(TOP_ROWS * 2).iter_rows(named=True):
            cells = [escape(str(record[dimension]) if record[dimension] is not None else "(empty)")]
            cells += [_number(record[m.name]) for m in metrics]
            if lead.additive:
                share = (record[lead.name] or 0) / lead_total * 100 if lead_total else 0
                cells.append(f"{share:.1f}%")
            rows.append(cells)
        rest = breakdown.height - TOP_ROWS * 2
        if rest > 0:
            rows.append([f"{rest:,} more"] + [""] * (len(header) - 1))
        rows.append(["Total"] + [_number(totals[m.name]) for m in metrics] + (["100.0%"] if lead.additive else []))
        section = [Paragraph(f"Breakdown by {escape(heading)}", styles.h1), styles.table(rows, total_row=True)]
        story.append(KeepTogether(section[:1] + [Spacer(1, 2 * mm)]))
        story.append(section[1])
        if index == 0 and lead.additive and lead_total:
            top = breakdown.head(DONUT_SLICES)
            labels = [str(v) if v is not None else "(empty)" for v in top[dimension].to_list()]
            values = [float(v or 0) for v in top[lead.name].to_list()]
            other = float(lead_total) - sum(values)
            if breakdown.height > DONUT_SLICES and other > 0:
                labels.append(f"Other ({breakdown.height - DONUT_SLICES})")
                values.append(other)
            story.append(Spacer(1, 4 * mm))
            story.append(KeepTogether([
                Paragraph(f"Share of total {escape(lead.heading)}", styles.h2),
                _donut(labels, values, styles, branding, f"{lead.heading} by {heading}"),
            ]))

    # Top entities (or the top rows when the export has no entity column)
    if metrics and frame.height:
        lead = metrics[0]
        entity = next((d for d in dimensions if d[1].strip().lower() in ("entity", "store", "location")
                       or request.csv_format.columns[int(d[0][1:])].dimension_name == "entity"), None)
        story.append(Paragraph(f"Top {TOP_ROWS} by {escape(lead.heading)}", styles.h1))
        if entity is not None:
            top = _breakdown(frame, entity[0], metrics).head(TOP_ROWS)
            rows = [["#", entity[1]] + [m.heading for m in metrics]]
            for rank, record in enumerate(top.iter_rows(named=True), 1):
                rows.append([str(rank), escape(str(record[entity[0]]))] + [_number(record[m.name]) for m in metrics])
            text_columns = 2
        else:
            top = frame.sort(lead.name, descending=True, nulls_last=True).head(TOP_ROWS)
            text_columns = 2
            rows = [["#"] + table.headings]
            for rank, record in enumerate(top.iter_rows(), 1):
                rows.append([str(rank)] + [_number(v) if isinstance(v, int | float) else escape(str(v)) for v in record])
        story.append(styles.table(rows, text_columns=text_columns))

    # Comparison with the previous period
    if previous_totals is not None and metrics:
        story.append(Paragraph("Comparison with the previous period", styles.h1))
        length = request.metric_requests[0].end - request.metric_requests[0].start
        story.append(Paragraph(
            f"The {length.days + (1 if length.seconds or length.microseconds else 0)} days before the "
            "report's range, same filters.", styles.body))
        story.append(Spacer(1, 2 * mm))
        rows = [["Metric", "This period", "Previous period", "Change", "Change %"]]
        for m in metrics:
            now, before = totals[m.name], previous_totals[m.name]
            delta = (now - before) if now is not None and before is not None else None
            rows.append([escape(m.heading), _number(now), _number(before), _number(delta), _change(now, before)])
        story.append(styles.table(rows))

    # Appendix
    story.append(PageBreak())
    story.append(Paragraph("Appendix", styles.h1))
    story.append(Paragraph("Date range", styles.h2))
    for m in request.metric_requests:
        label = escape(m.metric_id or m.name or "metric request")
        story.append(Paragraph(
            f"<b>{label}</b>: {m.start.isoformat()} to {m.end.isoformat()} (UTC, both inclusive); "
            f"{m.start.astimezone(zone(request.timezone)).isoformat()} to "
            f"{m.end.astimezone(zone(request.timezone)).isoformat()} local", styles.small))
    story.append(Paragraph("Time zone", styles.h2))
    story.append(Paragraph(
        f"{escape(request.timezone)}: buckets are cut in this time zone (a day is a local day).",
        styles.body))
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
            f"<b>{escape(m.metric_id or m.name or 'metric request')}</b>: "
            + escape("; ".join(parts) or "all entities"), styles.small))
    for c in request.csv_format.columns:
        if c.filter:
            text = "; ".join(f"{k} = {' or '.join(v)}" for k, v in c.filter_values().items())
            story.append(Paragraph(f"<b>{escape(c.heading)}</b>: {escape(text)}", styles.small))
    story.append(Paragraph("Units", styles.h2))
    rows = [["Column", "Measure", "Per bucket", "Bucket"]]
    by_id = {m.metric_id: m for m in request.metric_requests}
    for i, c in enumerate(request.csv_format.columns):
        if c.is_metric:
            m = by_id[c.metric_id]
            function = m.decimation_function(c).value
            if m.transform is not None:
                function += f", then {m.transform.value}"
            rows.append([escape(c.heading), escape(c.fetch_value or ""), function, m.granularity.label])
    story.append(styles.table(rows, text_columns=4))

    def decorate(canvas, doc):
        canvas.saveState()
        width, height = A4
        canvas.setFillColor(styles.primary)
        canvas.rect(0, height - 8 * mm, width, 8 * mm, stroke=0, fill=1)
        canvas.setFillColor(styles.accent)
        canvas.rect(0, height - 9.2 * mm, width, 1.2 * mm, stroke=0, fill=1)
        canvas.setFillColor(colors.HexColor("#667085"))
        canvas.setFont("Helvetica", 7.5)
        footer = " · ".join(x for x in (branding.name, _title(request, branding, request_id)) if x)
        canvas.drawString(15 * mm, 8 * mm, footer[:110])
        canvas.drawRightString(width - 15 * mm, 8 * mm, f"Page {doc.page}")
        canvas.restoreState()

    out = io.BytesIO()
    document = SimpleDocTemplate(
        out, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=18 * mm,
        bottomMargin=16 * mm, title=_title(request, branding, request_id),
        author=branding.name or "export_pipeline", subject=f"export {request_id}",
    )
    document.build(story, onFirstPage=decorate, onLaterPages=decorate)
    return out.getvalue()
