"""Sealing inline credentials before they become run config."""

from __future__ import annotations

import copy
import json

import pytest

from export_pipeline.destinations.base import PermanentDeliveryError
from export_pipeline.contract.models import DestinationSpec
from export_pipeline.destinations.factory import spec_binding
from export_pipeline.destinations.sealing import (
    Sealer,
    binding,
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


SFTP = {"type": "sftp", "server": "sftp.example.com", "username": "u"}
FOR_SFTP = binding(SFTP, "password")


def test_seal_and_unseal():
    sealer = Sealer(generate_key())
    sealed = sealer.seal("pw-1", FOR_SFTP)
    assert is_sealed(sealed) and sealed.startswith("sealed:v2:") and "pw-1" not in sealed
    assert sealer.unseal(sealed, "destination.password", FOR_SFTP) == "pw-1"


def test_a_foreign_key_cannot_unseal_and_says_so_without_the_value():
    sealed = Sealer(generate_key()).seal("pw-1", FOR_SFTP)
    with pytest.raises(PermanentDeliveryError, match="not sealed with this deployment's") as error:
        Sealer(generate_key()).unseal(sealed, "destination.password", FOR_SFTP)
    assert "pw-1" not in str(error.value)


def test_plaintext_is_not_accepted_where_a_sealed_value_is_expected():
    with pytest.raises(PermanentDeliveryError, match="must arrive sealed"):
        Sealer(generate_key()).unseal("pw-1", "destination.password", FOR_SFTP)


@pytest.mark.parametrize("elsewhere", [
    {**SFTP, "server": "attacker.example"},
    {**SFTP, "port": 2222},
    {**SFTP, "username": "other"},
    {**SFTP, "type": "ftp"},
])
def test_a_sealed_value_does_not_unseal_for_another_destination(elsewhere):
    sealer = Sealer(generate_key())
    sealed = sealer.seal("pw-1", FOR_SFTP)
    with pytest.raises(PermanentDeliveryError, match="sealed for another destination") as error:
        sealer.unseal(sealed, "destination.password", binding(elsewhere, "password"))
    assert "pw-1" not in str(error.value)


def test_a_sealed_value_does_not_unseal_for_another_field():
    s3 = {"type": "s3", "aws_bucket": "b", "aws_region": "us-west-2"}
    sealer = Sealer(generate_key())
    sealed = sealer.seal("sk-1", binding(s3, "aws_secret_access_key"))
    with pytest.raises(PermanentDeliveryError, match="another destination or field"):
        sealer.unseal(sealed, "", binding(s3, "aws_access_key_id"))
    with pytest.raises(PermanentDeliveryError, match="another destination or field"):
        sealer.unseal(sealed, "", binding({**s3, "aws_bucket": "c"}, "aws_secret_access_key"))


def test_the_binding_of_a_request_object_is_that_of_the_validated_destination():
    written = {"type": "SFTP", "server": "SFTP.Example.com.", "port": "22", "username": "u",
               "path": "/in", "password": "x"}
    spec = DestinationSpec.model_validate(written)
    assert binding(written, "password") == spec_binding(spec, "password") == FOR_SFTP
    assert binding({**SFTP, "path": "/elsewhere"}, "password") == FOR_SFTP  # the folder is free


def test_a_value_sealed_by_an_earlier_version_is_refused():
    sealer = Sealer(generate_key())
    with pytest.raises(PermanentDeliveryError, match="earlier version"):
        sealer.unseal("sealed:v1:gAAAAAB", "destination.password", FOR_SFTP)
    assert plaintext_secret_paths({"csvFormat": {}, "destination": {**SFTP, "password": "sealed:v1:x"}}) == []


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
    single = seal_document({"csvFormat": {}, "destination": {**SFTP, "password": "p"}}, sealer)
    assert sealer.unseal(single["destination"]["password"], "", FOR_SFTP) == "p"


def test_a_credential_is_found_wherever_the_document_puts_it():
    plain = {**SFTP, "password": "pw-2"}
    both = {**copy.deepcopy(BODY), "data": {"id": "x", "body": {"destination": plain}}}
    assert "data.body.destination.password" in plaintext_secret_paths(both)
    assert plaintext_secret_paths({"csvFormat": {}, "x": [{"y": {"password": "p"}}]}) == ["x[0].y.password"]
    sealed = seal_document(both, Sealer(generate_key()))
    assert plaintext_secret_paths(sealed) == [] and "pw-2" not in json.dumps(sealed)


def test_key_rotation():
    old, new = generate_key(), generate_key()
    sealed_before = Sealer(old).seal("pw-1", FOR_SFTP)
    rotated = Sealer(f"{new},{old}")
    assert rotated.unseal(sealed_before, "", FOR_SFTP) == "pw-1"
    assert Sealer(new).unseal(rotated.seal("pw-2", FOR_SFTP), "", FOR_SFTP) == "pw-2"


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
