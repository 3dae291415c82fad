"""The request inbox: request files in a bucket prefix, run keys, result documents."""
