"""Time: aggregation periods, decimation widths, time zones, bucket boundaries and the 90-day windows."""
