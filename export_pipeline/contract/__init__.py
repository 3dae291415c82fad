"""The request contract: the request models, reading request documents, validation with JSON paths."""
