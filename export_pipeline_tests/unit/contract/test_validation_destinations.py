"""Validation of seed 003's ``destination`` (and the ``destinations`` list): every problem at
once, with JSON paths, and never a credential's value in a message."""

from __future__ import annotations

import copy

import pytest

from export_pipeline.contract.models import DestinationType
from export_pipeline.contract.problems import InvalidRequest
from export_pipeline.contract.validation import validate_document
from export_pipeline_tests.support.requests import SEED_BODY

# Seed 003's examples, verbatim (the SFTP one sends port "21" as a string).
SEED_003 = {
    "ui": {"type": "aws"},
    "sftp": {"type": "sftp", "server": "example.com", "port": "21", "username": "username",
             "password": "password", "path": "/"},
    "s3": {"type": "s3", "aws_access_key_id": "A1234567890", "aws_secret_access_key": "B1234567890",
           "aws_bucket": "my_bucket", "aws_region": "us-west-2", "path": "folder"},
    "gcs": {"type": "gcs", "gcs_bucket": "bucketname", "path": "/audiencetrendsexport"},
}


def with_destination(destination=None, **extra) -> dict:
    body = copy.deepcopy(SEED_BODY)
    if destination is not None:
        body["destination"] = destination
    body.update(extra)
    return body


def problems(document) -> list[str]:
    with pytest.raises(InvalidRequest) as error:
        validate_document(document)
    return [str(p) for p in error.value.problems]


@pytest.mark.parametrize("name", ["ui", "sftp", "gcs"])
def test_seed_003_examples_are_valid(name):
    request = validate_document(with_destination(SEED_003[name])).request
    assert request.destination.type.value == SEED_003[name]["type"]


def test_seed_003_s3_example_bucket_name_is_not_an_s3_bucket_name():
    # "my_bucket" (the seed's placeholder) has an underscore, which S3 refuses.
    assert problems(with_destination(SEED_003["s3"])) == [
        "destination.aws_bucket: 'my_bucket' is not an S3 bucket name (3 to 63 of a-z, 0-9, '.', '-')"
    ]
    fixed = dict(SEED_003["s3"], aws_bucket="my-bucket")
    assert validate_document(with_destination(fixed)).request.destination.aws_bucket == "my-bucket"


def test_types_are_case_insensitive_and_ports_may_be_strings():
    request = validate_document(with_destination(dict(SEED_003["sftp"], type="SFTP"))).request
    assert request.destination.type is DestinationType.sftp and request.destination.port == 21
    assert request.deliveries() == [request.destination]
    assert validate_document(with_destination({"type": "AWS"})).request.deliveries() == []
    assert validate_document(with_destination()).request.deliveries() == []


@pytest.mark.parametrize("port", ["\u0662\u0662", " 22", "22 ", "+22", "2_2", "022222", "\u00b2", 22.0])
def test_a_port_is_a_number_or_plain_ascii_digits(port):
    assert problems(with_destination(dict(SEED_003["sftp"], port=port))) == [
        "destination.port: must be a port number (1 to 65535)"
    ]


def test_every_problem_at_once_with_json_paths():
    found = problems({"data": {"id": "r1", "body": with_destination({
        "type": "sftp", "server": "sftp://example.com/x", "port": 70000, "path": "/a//b/../c",
        "aws_bucket": "b",
    })}})
    assert found == [
        "data.body.destination.port: must be a port number (1 to 65535)",
        "data.body.destination.username: required for type 'sftp'",
        "data.body.destination.aws_bucket: not used by type 'sftp'",
        "data.body.destination.password: type 'sftp' needs a password or a savedKey (a named key)",
        "data.body.destination.server: must be a host name or IP address, without scheme, port or path",
        "data.body.destination.path: must not contain a doubled slash ('//')",
        "data.body.destination.path: must not contain '.' or '..' segments",
    ]


def test_required_fields_per_type():
    assert problems(with_destination({"type": "s3"})) == [
        f"destination.{f}: required for type 's3'"
        for f in ("aws_access_key_id", "aws_secret_access_key", "aws_bucket", "aws_region")
    ]
    assert problems(with_destination({"type": "ftp", "server": "ftp.example.com"})) == [
        "destination.username: required for type 'ftp'",
        "destination.password: required for type 'ftp'",
    ]
    assert problems(with_destination({"type": "gcs"})) == ["destination.gcs_bucket: required for type 'gcs'"]
    assert problems(with_destination({"type": "ftp2"})) == [
        "destination.type: 'ftp2' is not one of 'aws', 's3', 'sftp', 'ftp', 'ftps' or 'gcs'"
    ]
    assert problems(with_destination({"type": "aws", "path": "x"})) == [
        "destination.path: not used by type 'aws'"
    ]


def test_credentials_never_appear_in_messages():
    found = problems(with_destination({
        "type": "s3", "aws_access_key_id": 12345, "aws_secret_access_key": ["s3cr3t-value"],
        "aws_bucket": "bucket", "aws_region": "us-west-2", "server": "x",
    }))
    assert all("12345" not in p and "s3cr3t-value" not in p for p in found)
    assert "destination.aws_secret_access_key: Input should be a valid string" in found


def test_saved_key_names_are_names_not_paths():
    found = problems(with_destination(dict(
        SEED_003["sftp"], password=None, savedKey="../../etc/ssh/ssh_host_rsa_key"
    )))
    assert found == ["destination.savedKey: '../../etc/ssh/ssh_host_rsa_key' is not the name "
                     "of a saved key (letters, digits, '.', '_', '-')"]


def test_destinations_list():
    body = with_destination(destinations=[SEED_003["ui"], SEED_003["sftp"], SEED_003["gcs"]])
    request = validate_document(body).request
    assert [d.type.value for d in request.deliveries()] == ["sftp", "gcs"]
    assert problems(with_destination(SEED_003["ui"], destinations=[SEED_003["gcs"]])) == [
        "destinations: give either destination or destinations, not both"
    ]
    assert problems(with_destination(destinations=[])) == ["destinations: must not be empty"]
    assert problems(with_destination(destinations=[SEED_003["gcs"], dict(SEED_003["gcs"], path="audiencetrendsexport/")])) == [
        "destinations[1]: delivers to the same place as destinations[0]"
    ]
