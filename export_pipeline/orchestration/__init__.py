"""Dagster wiring: resources, ops, the export job and its definitions. No export logic here."""
