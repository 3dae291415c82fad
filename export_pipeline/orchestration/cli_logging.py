"""The command line's console logger: Dagster's own, without its error records.

A failed step or run logs an error record with the whole stack trace; the command prints the
reason itself, once, as one line (``export failed: …``, or that it was interrupted). The run's
event log keeps every record, traces included.
"""

import logging

import dagster as dg


def _below_error(record: logging.LogRecord) -> bool:
    return record.levelno < logging.ERROR


@dg.logger(
    config_schema=dg.colored_console_logger.config_schema,
    description="Dagster's console logger without error records (the command prints the reason).",
)
def cli_console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = dg.colored_console_logger.logger_fn(init_context)
    logger.addFilter(_below_error)
    return logger
