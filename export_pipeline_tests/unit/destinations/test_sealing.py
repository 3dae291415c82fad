"""Sealing inline credentials before they become run config."""

from __future__ import annotations

import copy
import json

import pytest

from export_pipeline.destinations.base import PermanentDeliveryError
from export_pipeline.destinations.sealing import (
    Sealer,
    generate_key,
    is_sealed,
    plaintext_secret_paths,
    seal_document,
    seal_for_run_config,
    secret_values,
)

BODY = {
    "csvFormat": {}, "metricRequests": [],
    "destinations": [
        {"type": "sftp", "server": "sftp.example.com", "username": "u", "password": "pw-1"},
        {"type": "s3", "aws_access_key_id": "AKIA1", "aws_secret_access_key": "sk-1",
         "aws_bucket": "b", "aws_region": "us-west-2"},
        {"type": "gcs", "gcs_bucket": "g"},
    ],
}


def test_seal_and_unseal():
    sealer = Sealer(generate_key())
    sealed = sealer.seal("pw-1")
    assert is_sealed(sealed) and "pw-1" not in sealed
    assert sealer.unseal(sealed, "destination.password") == "pw-1"


def test_a_foreign_key_cannot_unseal_and_says_so_without_the_value():
    sealed = Sealer(generate_key()).seal("pw-1")
    with pytest.raises(PermanentDeliveryError, match="not sealed with this deployment's") as error:
        Sealer(generate_key()).unseal(sealed, "destination.password")
    assert "pw-1" not in str(error.value)


def test_plaintext_is_not_accepted_where_a_sealed_value_is_expected():
    with pytest.raises(PermanentDeliveryError, match="must arrive sealed"):
        Sealer(generate_key()).unseal("pw-1", "destination.password")


def test_bad_key():
    with pytest.raises(ValueError, match="Fernet key"):
        Sealer("not a key")


def test_seal_document_finds_every_credential_in_body_or_envelope():
    envelope = {"data": {"id": "x", "body": copy.deepcopy(BODY)}}
    assert plaintext_secret_paths(BODY) == [
        "destinations[0].password", "destinations[1].aws_access_key_id",
        "destinations[1].aws_secret_access_key",
    ]
    assert plaintext_secret_paths(envelope)[0] == "data.body.destinations[0].password"
    assert sorted(secret_values(envelope)) == ["AKIA1", "pw-1", "sk-1"]
    sealer = Sealer(generate_key())
    sealed = seal_document(envelope, sealer)
    assert plaintext_secret_paths(sealed) == []
    text = json.dumps(sealed)
    assert not [s for s in ("pw-1", "AKIA1", "sk-1") if s in text]
    assert envelope["data"]["body"]["destinations"][0]["password"] == "pw-1"  # a copy
    assert seal_document(sealed, sealer) == sealed  # sealed values stay as they are
    single = seal_document({"csvFormat": {}, "destination": {"password": "p"}}, sealer)
    assert sealer.unseal(single["destination"]["password"], "") == "p"


def test_key_rotation():
    old, new = generate_key(), generate_key()
    sealed_before = Sealer(old).seal("pw-1")
    rotated = Sealer(f"{new},{old}")
    assert rotated.unseal(sealed_before, "") == "pw-1"
    assert Sealer(new).unseal(rotated.seal("pw-2"), "") == "pw-2"


def test_seal_for_run_config():
    no_secrets = {"csvFormat": {}, "destination": {"type": "gcs", "gcs_bucket": "g"}}
    assert seal_for_run_config(no_secrets, None) is no_secrets
    with pytest.raises(ValueError, match="EXPORT_SEALING_KEY is not set"):
        seal_for_run_config(BODY, None)
    key = generate_key()
    assert plaintext_secret_paths(seal_for_run_config(BODY, key)) == []


def test_mask_secrets_hides_every_credential_and_keeps_the_words_around_a_short_one():
    from export_pipeline.destinations.sealing import mask_secrets

    message = "login p failed for user exports with key AKIAEXAMPLE123 at loopback address"
    assert mask_secrets(message, ["p", "AKIAEXAMPLE123", ""]) == (
        "login *** failed for user exports with key *** at loopback address"
    )
    assert mask_secrets("url=sftp://u:hunter2@host", ["hunter2"]) == "url=sftp://u:***@host"
    assert mask_secrets("tokenLONGSECRETVALUEtail", ["LONGSECRETVALUE"]) == "token***tail"
