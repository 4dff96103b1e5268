"""Assets on the S3 backend, against a real S3-compatible server (moto's, in a subprocess):
multipart uploads hashed on the way, one object per organization and digest, ranged
reads, nothing left behind by a refused upload, links that die with their asset."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3
import httpx
import pytest

from tests.support.api import bearer, create_org, envelope, error_code, signup
from tests.support.servers import Server, free_port, start_server
from tests.support.storage import own_storage

BUCKET = "treadle-assets"
PREFIX = "t/"
LIMIT = 24 * 1024 * 1024
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture(scope="module")
def s3_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("the S3 server did not start") from None
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)
    log.close()


@pytest.fixture(scope="module")
def s3(s3_url: str) -> Any:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1", **CREDENTIALS)
    client.create_bucket(Bucket=BUCKET)
    yield client
    client.close()


@pytest.fixture(scope="module")
def s3_server(
    s3: Any, s3_url: str, database_url: str, server_env: dict, tmp_path_factory
) -> Iterator[Server]:
    tmp: Path = tmp_path_factory.mktemp("assets_s3")
    with own_storage(database_url, server_env, "assets_s3") as env:
        env = {
            **env,
            "TREADLE_PORT": str(free_port()),
            "TREADLE_DATA_DIR": str(tmp / "data"),
            "TREADLE_ASSET_STORE": "s3",
            "TREADLE_ASSET_S3_URL": s3_url,
            "TREADLE_ASSET_S3_BUCKET": BUCKET,
            "TREADLE_ASSET_S3_PREFIX": PREFIX,
            "TREADLE_ASSET_S3_ACCESS_KEY": "testing",
            "TREADLE_ASSET_S3_SECRET_KEY": "testing",
            "TREADLE_ASSET_S3_PART_BYTES": str(5 * 1024 * 1024),
            "TREADLE_ASSET_MAX_BYTES": str(LIMIT),
        }
        server = start_server("granian", env, tmp / "server.log")
        yield server
        server.stop()


def keys(s3: Any, org_id: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}{org_id}/")
    return sorted(item["Key"] for item in listed.get("Contents", []))


def blob_keys(s3: Any, org_id: str) -> list[str]:
    return [k for k in keys(s3, org_id) if "/links/" not in k]


@pytest.fixture
def org(s3_server: Server) -> dict[str, Any]:
    with s3_server.client() as client:
        owner = signup(client)
        made = create_org(client, owner)
    return {**made, "auth": bearer(owner)}


def upload(client: httpx.Client, org: dict, body: Any, name: str = "blob") -> httpx.Response:
    return client.post(
        "/v1/assets",
        params={"organization_id": org["id"], "name": name},
        content=body,
        headers=org["auth"],
    )


def chunked(data: bytes, size: int = 1 << 20) -> Iterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


def test_a_multipart_upload_is_stored_once_by_digest_and_read_back_in_ranges(
    s3_server: Server, s3: Any, org: dict
) -> None:
    data = os.urandom(12 * 1024 * 1024 + 5)  # three parts of 5 MiB, the last short
    digest = "blake3:" + blake3.blake3(data).hexdigest()
    with httpx.Client(base_url=s3_server.url, timeout=60) as client:
        first = upload(client, org, chunked(data))
        assert first.status_code == 201, first.text
        asset = envelope(first)["data"]
        assert (asset["digest"], asset["size"]) == (digest, len(data))
        hexed = digest.removeprefix("blake3:")
        assert blob_keys(s3, org["id"]) == [f"{PREFIX}{org['id']}/{hexed[:2]}/{hexed}"]
        stored = s3.get_object(Bucket=BUCKET, Key=blob_keys(s3, org["id"])[0])["Body"].read()
        assert stored == data

        second = envelope(upload(client, org, chunked(data), "again"))["data"]
        assert blob_keys(s3, org["id"]) == [f"{PREFIX}{org['id']}/{hexed[:2]}/{hexed}"]
        assert not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")

        whole = client.get(f"/v1/assets/{asset['id']}/content", headers=org["auth"])
        assert whole.content == data and whole.headers["etag"] == f'"{digest}"'
        span = {**org["auth"], "range": "bytes=5242870-5242900"}
        part = client.get(f"/v1/assets/{second['id']}/content", headers=span)
        assert (part.status_code, part.content) == (206, data[5242870:5242901])
        found = client.head(
            f"/v1/assets/by-digest/{digest}",
            params={"organization_id": org["id"]},
            headers=org["auth"],
        )
        assert found.status_code == 200

        link = envelope(client.get(f"/v1/assets/{asset['id']}/url", headers=org["auth"]))
        path = link["data"]["path"]
        with httpx.Client(base_url=s3_server.url, timeout=60) as anonymous:
            assert anonymous.get(path).content == data
            assert client.delete(f"/v1/assets/{asset['id']}", headers=org["auth"]).is_success
            assert anonymous.get(path).status_code == 404  # the blob is still there
        assert len(blob_keys(s3, org["id"])) == 1
        assert client.delete(f"/v1/assets/{second['id']}", headers=org["auth"]).is_success
        deadline = time.monotonic() + 5
        while keys(s3, org["id"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert keys(s3, org["id"]) == []


def test_a_small_upload_is_one_put_and_an_empty_one_works(
    s3_server: Server, s3: Any, org: dict
) -> None:
    with s3_server.client() as client:
        small = envelope(upload(client, org, secrets.token_bytes(1000)))["data"]
        empty = envelope(upload(client, org, b""))["data"]
        assert empty["size"] == 0
        got = client.get(f"/v1/assets/{empty['id']}/content", headers=org["auth"])
        assert (got.status_code, got.content) == (200, b"")
        assert (
            len(client.get(f"/v1/assets/{small['id']}/content", headers=org["auth"]).content)
            == 1000
        )
    assert len(blob_keys(s3, org["id"])) == 2


def test_an_upload_over_the_limit_leaves_no_object_and_no_open_upload(
    s3_server: Server, s3: Any, org: dict
) -> None:
    with httpx.Client(base_url=s3_server.url, timeout=60) as client:
        refused = upload(client, org, chunked(b"z" * (LIMIT + 1)))
        assert (refused.status_code, error_code(refused)) == (413, "payload_too_large")
    assert keys(s3, org["id"]) == []
    assert not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")
