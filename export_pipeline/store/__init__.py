"""The metric store: the source interface, the Parquet folder implementation and the CLI's read-ahead."""
