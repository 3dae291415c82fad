"""Deliver a finished export file to where the customer wants it: their own S3 bucket, an SFTP
or FTP(S) server, or a GCS bucket. No Dagster here; ``orchestration.delivery_ops`` wires it.

``base`` is the interface every kind implements, ``factory`` builds one from a request's
destination, ``host_policy`` decides where outbound connections may go, ``sealing`` keeps
inline credentials out of run config, ``paths`` places the file on the far side.
"""
