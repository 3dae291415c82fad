"""What every reference script ends with, written once: upload the local CSV with boto3's
managed transfer (multipart, threaded) and print the SigV4 URL as the product prints it."""

import json

import boto3
from botocore.config import Config


def upload_and_print_url(path: str, bucket: str, key: str) -> None:
    boto3.client("s3").upload_file(
        path, bucket, key, ExtraArgs={"ContentType": "text/csv; charset=utf-8"}
    )
    signer = boto3.client("s3", config=Config(signature_version="s3v4"))
    url = signer.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600
    )
    print(json.dumps({"bucket": bucket, "key": key, "signedUrl": url}), flush=True)
