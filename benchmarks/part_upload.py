"""One part of the product's CSV export, alone (see ``bench_csv_parts.py``): the product's
uploader streaming a finished CSV file into the bucket in 1 MiB chunks (as the CSV writer
hands it slices), then a SigV4 URL. Usage: ``python part_upload.py FILE BUCKET KEY``.
"""

import json
import sys
import time

import boto3
from botocore.config import Config

from export_pipeline.publishing.s3_upload import presign_get, upload_stream


def chunks(path: str):
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            yield chunk


def main(path: str, bucket: str, key: str) -> None:
    session = boto3.session.Session()
    client = session.client("s3")
    signer = session.client("s3", config=Config(signature_version="s3v4"))
    started = time.perf_counter()
    upload_stream(client, bucket, key, chunks(path), "text/csv; charset=utf-8")
    url = presign_get(signer, bucket, key, 3600)
    # The upload's own time, without the start-up and clients the product pays once.
    seconds = time.perf_counter() - started
    print(json.dumps({"bucket": bucket, "key": key, "signedUrl": url, "seconds": seconds}),
          flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
