"""The export service API: tenants and their keys, scopes, quotas, rate limits, the export
resource and its state store as plain modules; ``app`` is the thin HTTP layer over them."""
