"""Planning: a validated request becomes the list of store reads."""
