"""File formats: CSV, XLSX and the PDF report, with the formula guard and report branding."""
