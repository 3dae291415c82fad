"""export_pipeline: metric requests in, a CSV in object storage with a signed URL out."""
