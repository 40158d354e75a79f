"""boto3/botocore against passport's IMDS endpoint, with moto_server as STS.

botocore finds credentials with nothing but AWS_EC2_METADATA_SERVICE_ENDPOINT set, and they
must be exactly what passport's container endpoint serves (i.e. what moto's STS issued).
The role ARN has a path on purpose: IMDS lists the role name, the last segment only.
"""

from __future__ import annotations

import urllib.error
import urllib.request

import boto3
import pytest
from botocore.exceptions import MetadataRetrievalError
from botocore.utils import InstanceMetadataRegionFetcher

from conftest import (
    assumed_role_arn,
    imds_env,
    start_ready_passport,
    stop_passport,
    use_env,
)

ROLE_ARN = "arn:aws:iam::123456789012:role/team/imds-app"
ROLE_NAME = "imds-app"
REGION = "eu-west-1"


def start_imds_passport(moto, web_identity_token, workdir, *extra_flags):
    """IMDS is off unless asked for; `extra_flags` may ask otherwise (`--disable-imds`)."""
    imds = [] if "--disable-imds" in extra_flags else ["--imds"]
    return start_ready_passport(
        moto, web_identity_token, workdir, "--region", REGION, *imds, *extra_flags, role_arn=ROLE_ARN
    )


@pytest.fixture(scope="module")
def imds_passport(moto, web_identity_token, tmp_path_factory):
    """A passport for ROLE_ARN in REGION, shared by this module's read-only tests."""
    server = start_imds_passport(moto, web_identity_token, tmp_path_factory.mktemp("imds-passport"))
    yield server
    stop_passport(server)


@pytest.fixture
def imds_client_env(client_env, imds_passport, monkeypatch):
    """The in-process environment botocore sees: passport's IMDS endpoint, nothing else."""
    use_env(monkeypatch, imds_env(client_env, imds_passport))


def test_boto3_gets_exactly_the_sts_credentials(imds_passport, imds_client_env):
    served = imds_passport.served()
    creds = boto3.Session().get_credentials()
    assert creds is not None, "botocore found no credentials through IMDS"
    assert creds.method == "iam-role"
    frozen = creds.get_frozen_credentials()
    assert frozen.access_key == served["AccessKeyId"]
    assert frozen.secret_key == served["SecretAccessKey"]
    assert frozen.token == served["Token"]
    assert served["AccessKeyId"].startswith("ASIA"), "issued by moto's STS"


def test_boto3_credentials_work_against_moto_sts(imds_client_env, moto):
    sts = boto3.Session().client("sts", region_name=REGION, endpoint_url=moto.url)
    arn = sts.get_caller_identity()["Arn"]
    assert arn == assumed_role_arn(role_arn=ROLE_ARN), arn


def test_botocore_imds_region_discovery(imds_passport, imds_client_env):
    # botocore asks for `placement/availability-zone/` (trailing slash) and drops the
    # last character.
    fetcher = InstanceMetadataRegionFetcher(
        config={"ec2_metadata_service_endpoint": imds_passport.base_url, "ec2_metadata_v1_disabled": True}
    )
    assert fetcher.retrieve_region() == REGION


def test_role_listing_and_token_rules_over_the_wire(imds_passport):
    def call(method, path, headers=None):
        req = urllib.request.Request(imds_passport.base_url + path, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=2) as resp:
                return resp.status, resp.headers, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode()

    ttl = "X-aws-ec2-metadata-token-ttl-seconds"
    status, headers, token = call("PUT", "/latest/api/token", {ttl: "21600"})
    assert status == 200
    assert headers[ttl] == "21600"
    status, _, _ = call("PUT", "/latest/api/token", {ttl: "21600", "X-Forwarded-For": "10.0.0.1"})
    assert status == 403
    status, _, _ = call("PUT", "/latest/api/token", {ttl: "0"})
    assert status == 400
    listing = "/latest/meta-data/iam/security-credentials/"
    assert call("GET", listing)[0] == 401, "IMDSv1 refused by default"
    status, _, body = call("GET", listing, {"X-aws-ec2-metadata-token": token})
    assert (status, body) == (200, ROLE_NAME)


@pytest.mark.parametrize("flags", [(), ("--disable-imds",)], ids=["default", "disable-imds"])
def test_boto3_gets_nothing_when_imds_is_off(moto, web_identity_token, client_env, tmp_path, monkeypatch, flags):
    """IMDS is off by default (it authenticates nobody), and with --disable-imds."""
    server = start_ready_passport(moto, web_identity_token, tmp_path, "--region", REGION, *flags, role_arn=ROLE_ARN)
    try:
        use_env(monkeypatch, imds_env(client_env, server))
        # The token PUT gets 404; with IMDSv1 disabled botocore raises rather than fall back.
        with pytest.raises(MetadataRetrievalError):
            boto3.Session().get_credentials()
    finally:
        stop_passport(server)
