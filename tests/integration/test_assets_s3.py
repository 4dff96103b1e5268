"""Assets on the S3 backend, against a real S3-compatible server (moto's, in a subprocess):
multipart uploads hashed on the way, one object per organization and digest, ranged
reads, nothing left behind by a refused upload, links that die with their asset."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3
import httpx
import pytest

from tests.support.api import bearer, create_org, envelope, error_code, signup
from tests.support.s3 import bucket, moto_server, store_env
from tests.support.servers import Server, free_port, start_server
from tests.support.storage import own_storage

BUCKET = "treadle-assets"
PREFIX = "t/"
LIMIT = 24 * 1024 * 1024


@pytest.fixture(scope="module")
def s3_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture(scope="module")
def s3(s3_url: str) -> Any:
    client = bucket(s3_url, BUCKET)
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
            **store_env(s3_url, BUCKET, PREFIX),
            "TREADLE_ASSET_S3_PART_BYTES": str(5 * 1024 * 1024),
            "TREADLE_ASSET_MAX_BYTES": str(LIMIT),
            # Room for two copies of 9 MiB (the eviction test) but not three.
            "TREADLE_ASSET_S3_CACHE_BYTES": str(20 * 1024 * 1024),
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
        # Past 8 MiB a read is sent from a local copy of the blob, made by the first one.
        copy = cached(s3_server, org["id"], hexed)
        assert copy.read_bytes() == data
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
    assert not copy.exists()  # removing the blob removed its copy


def cached(server: Server, org_id: str, hexed: str) -> Path:
    cache = Path(server.env["TREADLE_DATA_DIR"]) / "asset-cache"
    return cache / org_id / hexed[:2] / hexed


def test_the_local_copies_stay_within_their_budget_least_recently_used_first_out(
    s3_server: Server, s3: Any, org: dict
) -> None:
    blobs = [os.urandom(9 * 1024 * 1024 + n) for n in range(3)]
    with httpx.Client(base_url=s3_server.url, timeout=60) as client:
        ids = [
            envelope(upload(client, org, chunked(b), f"b{n}"))["data"]["id"]
            for n, b in enumerate(blobs)
        ]
        hexes = [blake3.blake3(b).hexdigest() for b in blobs]
        for n in (0, 1, 0, 2):  # the budget holds two: 1, the least recently read, goes
            got = client.get(f"/v1/assets/{ids[n]}/content", headers=org["auth"])
            assert got.content == blobs[n]
            time.sleep(0.02)  # distinct mtimes
        present = [cached(s3_server, org["id"], h).exists() for h in hexes]
        assert present == [True, False, True]
        # An evicted blob is copied again when it is read again.
        again = client.get(f"/v1/assets/{ids[1]}/content", headers=org["auth"])
        assert again.content == blobs[1]
        assert cached(s3_server, org["id"], hexes[1]).exists()


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
