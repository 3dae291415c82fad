"""Publishing: object keys, the streamed multipart upload, signed URLs."""
