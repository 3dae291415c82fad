"""The request contract: the request models, the envelope, reading request documents,
validation with JSON paths, and the response."""
