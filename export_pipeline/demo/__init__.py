"""The demo: a generated metric store and a local S3 server. Never imported by production code."""
