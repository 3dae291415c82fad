"""Text in the PDF report exactly as stored, in fonts that have its glyphs.

reportlab's ``Paragraph`` reads its text as markup, so ``&``, ``<`` and ``>`` are escaped once,
here, and never elsewhere. reportlab's standard fonts (Helvetica) only hold Latin-1: the
report's base font is DejaVu Sans, which matplotlib ships in its package data (Latin, Greek,
Cyrillic, Arabic, Hebrew and many symbols), embedded as a subset. CJK text falls back per run of
characters to reportlab's built-in CID fonts, which need no font file (the PDF reader supplies
them): Hangul to a Korean face, kana to a Japanese one (and Han characters next to kana too),
other Han characters to a Chinese one. Control characters, and anything no font here covers,
print as U+FFFD so they are visible instead of silently missing.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape

BASE = "DejaVuSans"
BOLD = "DejaVuSans-Bold"
CHINESE = "STSong-Light"
JAPANESE = "HeiseiMin-W3"
KOREAN = "HYSMyeongJo-Medium"
REPLACEMENT = "\ufffd"


@cache
def register() -> None:
    """Register the fonts with reportlab once per process (idempotent)."""
    import matplotlib
    from reportlab.lib.fonts import addMapping
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfbase.ttfonts import TTFont

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    pdfmetrics.registerFont(TTFont(BASE, str(folder / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont(BOLD, str(folder / "DejaVuSans-Bold.ttf")))
    for style in ((0, 0, BASE), (1, 0, BOLD), (0, 1, BASE), (1, 1, BOLD)):
        addMapping(BASE, *style)
    for name in (CHINESE, JAPANESE, KOREAN):
        pdfmetrics.registerFont(UnicodeCIDFont(name))


@cache
def _covered() -> frozenset[int]:
    """The code points both DejaVu faces draw (text may be set bold or not)."""
    from reportlab.pdfbase import pdfmetrics

    register()
    base = pdfmetrics.getFont(BASE).face.charToGlyph
    bold = pdfmetrics.getFont(BOLD).face.charToGlyph
    return frozenset(c for c in base if c in bold and base[c])


def _is_kana(code: int) -> bool:
    return 0x3040 <= code <= 0x30FF or 0x31F0 <= code <= 0x31FF or 0xFF65 <= code <= 0xFF9F


def _is_hangul(code: int) -> bool:
    return 0xAC00 <= code <= 0xD7AF or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F


def _is_cjk(code: int) -> bool:
    return (
        0x2E80 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF or 0xFF00 <= code <= 0xFFEF
        or 0x20000 <= code <= 0x2FFFF or _is_hangul(code)
    )


def visible(text: str) -> str:
    """``text`` with control characters (and unassigned ones) replaced by U+FFFD."""
    if text.isprintable() and text.isascii():
        return text
    return "".join(
        REPLACEMENT if unicodedata.category(ch) in ("Cc", "Cs", "Cn") else ch for ch in text
    )


def _font(code: int, japanese: bool) -> str | None:
    """The fallback face for one character; None keeps the base font."""
    if code < 0x80 or code in _covered() and not _is_cjk(code):
        return None
    if _is_hangul(code):
        return KOREAN
    if _is_kana(code):
        return JAPANESE
    if _is_cjk(code):
        return JAPANESE if japanese else CHINESE
    return None


def markup(value: object) -> str:
    """Paragraph markup that prints ``value`` as stored: escaped, with a font for every run."""
    text = visible(str(value))
    if text.isascii():
        return escape(text)
    japanese = any(_is_kana(ord(ch)) for ch in text)
    covered = _covered()
    out: list[str] = []
    run: list[str] = []
    current: str | None = None
    for ch in text:
        code = ord(ch)
        font = _font(code, japanese)
        if font is None and code >= 0x80 and code not in covered:
            ch = REPLACEMENT
        if font != current:
            _flush(out, run, current)
            run, current = [], font
        run.append(ch)
    _flush(out, run, current)
    return "".join(out)


def _flush(out: list[str], run: list[str], font: str | None) -> None:
    if not run:
        return
    text = escape("".join(run))
    out.append(text if font is None else f'<font name="{font}">{text}</font>')

