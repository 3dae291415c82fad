"""The table: fetched frames joined into the export table, and its layouts (wide, crosstab)."""
