"""How PDF reports look. Its own module so the deployment's settings (``ReportBranding``) can be
read without importing the PDF renderer and reportlab."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Branding:
    """How reports look: a workspace name, a logo (PNG/JPEG path) and two hex colours."""

    name: str | None = None
    logo_path: str | None = None
    primary_color: str = "#1F3A5F"
    accent_color: str = "#E07A1F"
