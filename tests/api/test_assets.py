"""Assets over HTTP: streamed uploads (raw and multipart), content stored once per
organization, ranged and conditional downloads, HEAD by digest, signed links that expire
and die with their asset, bounds on every input, and tenancy."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3
import httpx
import psycopg
import pytest

from tests.support.api import (
    add_member,
    bearer,
    create_key,
    create_org,
    envelope,
    error_code,
    signup,
)
from tests.support.servers import Server, free_port, start_server
from tests.support.storage import own_storage


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


@pytest.fixture
def org(client: httpx.Client) -> dict[str, Any]:
    owner = signup(client)
    made = create_org(client, owner)
    return {**made, "owner": owner, "auth": bearer(owner)}


def digest_of(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


def upload(
    client: httpx.Client,
    org: dict,
    data: bytes | Any,
    name: str = "report.bin",
    content_type: str | None = "application/octet-stream",
    labels: tuple[str, ...] = (),
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    params: list[tuple[str, str]] = [("organization_id", org["id"]), ("name", name)]
    params += [("label", label) for label in labels]
    sent = {**org["auth"], **(headers or {})}
    if content_type is not None:
        sent["content-type"] = content_type
    return client.post("/v1/assets", params=params, content=data, headers=sent)


def made(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return dict(envelope(response)["data"])


def blob_path(server: Server, org_id: str, digest: str) -> Path:
    hexed = digest.removeprefix("blake3:")
    return Path(server.env["TREADLE_DATA_DIR"]) / "assets" / org_id / hexed[:2] / hexed


def blob_rows(server: Server, org_id: str, digest: str) -> int:
    with psycopg.connect(server.env["TREADLE_DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT count(*) FROM asset_blobs WHERE organization_id = %s AND digest = %s",
            (org_id, digest),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_raw_upload_streams_in_and_reads_back_with_its_metadata(
    client: httpx.Client, org: dict, server: Server
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)

    def body() -> Iterator[bytes]:  # chunked: no Content-Length
        for at in range(0, len(data), 100_000):
            yield data[at : at + 100_000]

    asset = made(upload(client, org, body(), "scan.tif", "image/tiff", ("env=prod", "team=ml")))
    assert asset["name"] == "scan.tif"
    assert asset["content_type"] == "image/tiff"
    assert asset["size"] == len(data)
    assert asset["digest"] == digest_of(data)
    assert asset["labels"] == {"env": "prod", "team": "ml"}
    assert asset["created_by"] == f"user:{org['owner']['user']['id']}"
    assert asset["organization_id"] == org["id"]
    shown = envelope(client.get(f"/v1/assets/{asset['id']}", headers=org["auth"]))["data"]
    assert shown == asset

    got = client.get(f"/v1/assets/{asset['id']}/content", headers=org["auth"])
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["etag"] == f'"{asset["digest"]}"'
    assert got.headers["content-length"] == str(len(data))
    assert got.headers["accept-ranges"] == "bytes"
    assert got.headers["content-type"] == "image/tiff"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-disposition"].startswith('attachment; filename="scan.tif"')

    head = client.head(f"/v1/assets/{asset['id']}/content", headers=org["auth"])
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(data))
    assert head.headers["etag"] == got.headers["etag"]

    assert blob_path(server, org["id"], asset["digest"]).read_bytes() == data
    leftovers = list((Path(server.env["TREADLE_DATA_DIR"]) / "assets" / "tmp").iterdir())
    assert not [p for p in leftovers if p.name.startswith(org["id"])]


def test_an_empty_upload_is_an_asset_of_no_bytes(client: httpx.Client, org: dict) -> None:
    asset = made(upload(client, org, b"", "empty", None))
    assert (asset["size"], asset["content_type"]) == (0, "application/octet-stream")
    assert asset["digest"] == digest_of(b"")
    got = client.get(f"/v1/assets/{asset['id']}/content", headers=org["auth"])
    assert (got.status_code, got.content, got.headers["content-length"]) == (200, b"", "0")


def test_the_same_content_is_stored_once_per_organization_and_outlives_one_asset(
    client: httpx.Client, org: dict, server: Server
) -> None:
    data = secrets.token_bytes(50_000)
    first = made(upload(client, org, data, "a"))
    second = made(upload(client, org, data, "b"))
    assert first["id"] != second["id"] and first["digest"] == second["digest"]
    assert blob_rows(server, org["id"], first["digest"]) == 1
    path = blob_path(server, org["id"], first["digest"])
    assert len(list(path.parent.iterdir())) == 1

    other = {**create_org(client, org["owner"], "Other"), "auth": org["auth"]}
    third = made(upload(client, other, data, "c"))
    assert blob_path(server, other["id"], third["digest"]).is_file()  # stored per org

    gone = client.delete(f"/v1/assets/{first['id']}", headers=org["auth"])
    assert gone.status_code == 200 and envelope(gone)["data"]["id"] == first["id"]
    assert path.is_file() and blob_rows(server, org["id"], first["digest"]) == 1
    left = client.get(f"/v1/assets/{second['id']}/content", headers=org["auth"])
    assert left.content == data
    assert client.delete(f"/v1/assets/{second['id']}", headers=org["auth"]).status_code == 200
    assert blob_rows(server, org["id"], first["digest"]) == 0
    deadline = time.monotonic() + 5
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not path.exists()
    assert client.get(f"/v1/assets/{first['id']}", headers=org["auth"]).status_code == 404
    # The other organization's copy is its own.
    assert client.get(f"/v1/assets/{third['id']}/content", headers=org["auth"]).content == data


def test_head_by_digest_says_whether_the_organization_has_the_content(
    client: httpx.Client, org: dict
) -> None:
    data = secrets.token_bytes(1000)
    digest = digest_of(data)
    url = f"/v1/assets/by-digest/{digest}"
    params = {"organization_id": org["id"]}
    missing = client.head(url, params=params, headers=org["auth"])
    assert (missing.status_code, missing.content) == (404, b"")
    made(upload(client, org, data))
    found = client.head(url, params=params, headers=org["auth"])
    assert (found.status_code, found.content) == (200, b"")
    other = create_org(client, org["owner"], "Elsewhere")
    assert (
        client.head(url, params={"organization_id": other["id"]}, headers=org["auth"]).status_code
        == 404
    )
    for bad in ("blake3:../../etc/passwd", "sha256:" + "0" * 64, digest.upper(), "x"):
        assert (
            client.head(
                f"/v1/assets/by-digest/{bad}", params=params, headers=org["auth"]
            ).status_code
            == 404
        )


@pytest.mark.parametrize(
    ("header", "status", "content_range"),
    [
        ("bytes=0-9", 206, "0-9"),
        ("bytes=10-", 206, "10-99"),
        ("bytes=-5", 206, "95-99"),
        ("bytes=95-500", 206, "95-99"),
        ("bytes=-500", 206, "0-99"),
        ("bytes=99-99", 206, "99-99"),
        ("items=0-3", 200, None),  # a unit we do not know: ignored
        ("bytes=0-1,4-5", 200, None),  # several ranges: the whole content
    ],
)
def test_a_range_is_answered_with_206_and_its_content_range(
    client: httpx.Client, org: dict, header: str, status: int, content_range: str | None
) -> None:
    data = bytes(range(100))
    asset = made(upload(client, org, data))
    got = client.get(f"/v1/assets/{asset['id']}/content", headers={**org["auth"], "range": header})
    assert got.status_code == status, got.text
    if content_range is None:
        assert got.content == data and "content-range" not in got.headers
        return
    first, last = (int(n) for n in content_range.split("-"))
    assert got.content == data[first : last + 1]
    assert got.headers["content-range"] == f"bytes {content_range}/100"
    assert got.headers["content-length"] == str(last - first + 1)


@pytest.mark.parametrize(
    "header", ["bytes=100-", "bytes=5-2", "bytes=abc", "bytes=-0", "bytes=-", "bytes= 1-2x"]
)
def test_an_unsatisfiable_or_malformed_range_is_416(
    client: httpx.Client, org: dict, header: str
) -> None:
    asset = made(upload(client, org, bytes(100)))
    got = client.get(f"/v1/assets/{asset['id']}/content", headers={**org["auth"], "range": header})
    assert got.status_code == 416
    assert error_code(got) == "range_not_satisfiable"
    assert got.headers["content-range"] == "bytes */100"


def test_etag_gives_304_and_if_range_guards_a_range(client: httpx.Client, org: dict) -> None:
    data = secrets.token_bytes(1000)
    asset = made(upload(client, org, data))
    url = f"/v1/assets/{asset['id']}/content"
    etag = f'"{asset["digest"]}"'
    for match in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        same = client.get(url, headers={**org["auth"], "if-none-match": match})
        assert (same.status_code, same.content, same.headers["etag"]) == (304, b"", etag)
    assert client.get(url, headers={**org["auth"], "if-none-match": '"x"'}).status_code == 200
    ranged = {**org["auth"], "range": "bytes=0-9"}
    assert client.get(url, headers={**ranged, "if-range": etag}).status_code == 206
    stale = client.get(url, headers={**ranged, "if-range": '"blake3:old"'})
    assert (stale.status_code, stale.content) == (200, data)


def test_a_signed_link_works_without_credentials_until_it_expires(
    client: httpx.Client, org: dict
) -> None:
    data = secrets.token_bytes(5000)
    asset = made(upload(client, org, data, "notes.txt", "text/plain"))
    got = client.get(
        f"/v1/assets/{asset['id']}/url", params={"ttl_seconds": 60}, headers=org["auth"]
    )
    assert got.status_code == 200, got.text
    link = envelope(got)["data"]
    assert link["ttl_seconds"] == 60 and link["url"].endswith(link["path"])
    with httpx.Client(base_url=client.base_url) as anonymous:
        fetched = anonymous.get(link["path"])
        assert fetched.status_code == 200, fetched.text
        assert fetched.content == data
        assert fetched.headers["content-type"] == "text/plain"
        assert fetched.headers["etag"] == f'"{asset["digest"]}"'
        part = anonymous.get(link["path"], headers={"range": "bytes=-10"})
        assert (part.status_code, part.content) == (206, data[-10:])
        assert anonymous.head(link["path"]).headers["content-length"] == "5000"

        short = client.get(
            f"/v1/assets/{asset['id']}/url", params={"ttl_seconds": 1}, headers=org["auth"]
        )
        path = envelope(short)["data"]["path"]
        time.sleep(2.1)
        expired = anonymous.get(path)
        assert expired.status_code == 403 and "expired" in expired.json()["error"]["message"]


def test_a_signed_link_cannot_be_bent_to_another_asset_or_time(
    client: httpx.Client, org: dict
) -> None:
    one = made(upload(client, org, b"one"))
    two = made(upload(client, org, b"two"))
    path = envelope(client.get(f"/v1/assets/{one['id']}/url", headers=org["auth"]))["data"]["path"]
    base, query = path.split("?")
    fields = dict(part.split("=") for part in query.split("&"))
    with httpx.Client(base_url=client.base_url) as anonymous:
        assert anonymous.get(path).content == b"one"
        other = anonymous.get(f"/v1/assets/{two['id']}/download?{query}")
        assert other.status_code == 403
        bent = {
            "expires": str(int(fields["expires"]) + 1000),
            "digest": two["digest"].removeprefix("blake3:"),
            "sig": ("0" if fields["sig"][0] != "0" else "1") + fields["sig"][1:],
            "org": create_org(client, org["owner"], "Third")["id"],
        }
        for name, value in bent.items():
            changed = "&".join(f"{k}={value if k == name else v}" for k, v in fields.items())
            assert anonymous.get(f"{base}?{changed}").status_code == 403, name
        assert anonymous.get(base).status_code == 400
        assert anonymous.get(f"{base}?{query}&sig=x").status_code == 400  # given twice
        garbage = query.replace(fields["sig"], "../../etc/passwd")
        assert anonymous.get(f"{base}?{garbage}").status_code == 403


def test_a_signed_link_stops_working_when_its_asset_is_deleted(
    client: httpx.Client, org: dict
) -> None:
    data = secrets.token_bytes(2000)
    doomed = made(upload(client, org, data, "doomed"))
    keeper = made(upload(client, org, data, "keeper"))  # the same content stays stored
    link = envelope(client.get(f"/v1/assets/{doomed['id']}/url", headers=org["auth"]))["data"]
    kept = envelope(client.get(f"/v1/assets/{keeper['id']}/url", headers=org["auth"]))["data"]
    with httpx.Client(base_url=client.base_url) as anonymous:
        assert anonymous.get(link["path"]).status_code == 200
        assert client.delete(f"/v1/assets/{doomed['id']}", headers=org["auth"]).status_code == 200
        assert anonymous.get(link["path"]).status_code == 404
        assert anonymous.get(kept["path"]).content == data


@pytest.mark.parametrize("ttl", ["0", "-1", "604801", "abc", "1.5", ""])
def test_ttl_seconds_is_bounded(client: httpx.Client, org: dict, ttl: str) -> None:
    asset = made(upload(client, org, b"x"))
    got = client.get(
        f"/v1/assets/{asset['id']}/url", params={"ttl_seconds": ttl}, headers=org["auth"]
    )
    if ttl == "":
        assert got.status_code == 200  # empty is the default, as absent is
        return
    assert got.status_code == 400
    assert envelope(got)["error"]["details"]["path"] == "query.ttl_seconds"


@pytest.mark.parametrize(
    ("params", "headers", "path"),
    [
        ({"name": "a\nb"}, {}, "query.name"),
        ({"name": "x" * 256}, {}, "query.name"),
        ({"name": ""}, {}, "query.name"),
        ({"label": "bad key=v"}, {}, "query.label"),
        ({"label": "k=line\r\nbreak"}, {}, "query.label"),
        ({"label": "novalue"}, {}, "query.label"),
        ({"label": ["k=1", "k=2"]}, {}, "query.label"),
        ({"label": [f"k{i}=v" for i in range(33)]}, {}, "query.label"),
        ({}, {"content-type": "text/html\r\nx: y"}, "header.Content-Type"),
        ({}, {"content-type": "not a type"}, "header.Content-Type"),
        ({}, {"idempotency-key": "has space"}, "header.Idempotency-Key"),
    ],
)
def test_metadata_is_bounded_and_nothing_is_stored(
    client: httpx.Client, org: dict, server: Server, params: dict, headers: dict, path: str
) -> None:
    query = {"organization_id": org["id"], "name": "ok", **params}
    try:
        got = client.post(
            "/v1/assets", params=query, content=b"data", headers={**org["auth"], **headers}
        )
    except (httpx.LocalProtocolError, ValueError):
        return  # httpx itself refuses a header with a line break: nothing was sent
    assert got.status_code == 400, got.text
    assert envelope(got)["error"]["details"]["path"] == path
    listed = client.get("/v1/assets", params={"organization_id": org["id"]}, headers=org["auth"])
    assert envelope(listed)["data"] == []


def test_multipart_uploads_take_fields_then_the_file(client: httpx.Client, org: dict) -> None:
    data = secrets.token_bytes(300_000)
    got = client.post(
        "/v1/assets",
        params={"organization_id": org["id"]},
        data={"name": "photo one.jpg", "label": ["kind=photo", "year=2026"]},
        files={"file": ("ignored.jpg", data, "image/jpeg")},
        headers=org["auth"],
    )
    asset = made(got)
    assert (asset["name"], asset["content_type"], asset["size"]) == (
        "photo one.jpg",
        "image/jpeg",
        len(data),
    )
    assert asset["labels"] == {"kind": "photo", "year": "2026"}
    assert asset["digest"] == digest_of(data)
    named = made(
        client.post(
            "/v1/assets",
            params={"organization_id": org["id"]},
            files={"file": ("from-filename.csv", b"a,b\n", "text/csv")},
            headers=org["auth"],
        )
    )
    assert (named["name"], named["content_type"]) == ("from-filename.csv", "text/csv")
    content = client.get(f"/v1/assets/{asset['id']}/content", headers=org["auth"]).content
    assert content == data


@pytest.mark.parametrize(
    "body",
    [
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nxx\r\n'
        b'--B\r\nContent-Disposition: form-data; name="name"\r\n\r\nlate\r\n--B--\r\n',
        b'--B\r\nContent-Disposition: form-data; name="name"\r\n\r\nno file\r\n--B--\r\n',
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\ntruncated',
        b'--B\r\nContent-Disposition: form-data; name="file"\r\n\r\nno name\r\n--B--\r\n',
    ],
)
def test_a_malformed_multipart_body_is_400(client: httpx.Client, org: dict, body: bytes) -> None:
    got = client.post(
        "/v1/assets",
        params={"organization_id": org["id"]},
        content=body,
        headers={**org["auth"], "content-type": "multipart/form-data; boundary=B"},
    )
    assert got.status_code == 400, got.text
    listed = client.get("/v1/assets", params={"organization_id": org["id"]}, headers=org["auth"])
    assert envelope(listed)["data"] == []


def test_an_idempotency_key_makes_a_retry_find_the_first_asset(
    client: httpx.Client, org: dict
) -> None:
    key = {"idempotency-key": secrets.token_hex(8)}
    first = made(upload(client, org, b"same bytes", headers=key))
    again = upload(client, org, b"same bytes", headers=key)
    assert made(again)["id"] == first["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = upload(client, org, b"other bytes", headers=key)
    assert (other.status_code, error_code(other)) == (422, "idempotency_key_reused")


def test_lists_page_newest_first_and_filter_by_digest_and_label(
    client: httpx.Client, org: dict
) -> None:
    made_ = [made(upload(client, org, f"n{i}".encode(), labels=(f"i={i % 2}",))) for i in range(5)]
    params = {"organization_id": org["id"], "limit": 2}
    page = envelope(client.get("/v1/assets", params=params, headers=org["auth"]))
    assert [a["id"] for a in page["data"]] == [made_[4]["id"], made_[3]["id"]]
    cursor = page["meta"]["page"]["next_cursor"]
    rest = envelope(
        client.get("/v1/assets", params={**params, "cursor": cursor}, headers=org["auth"])
    )
    assert [a["id"] for a in rest["data"]] == [made_[2]["id"], made_[1]["id"]]
    odd = {"organization_id": org["id"], "label": "i=1"}
    listed = envelope(client.get("/v1/assets", params=odd, headers=org["auth"]))["data"]
    assert {a["id"] for a in listed} == {made_[1]["id"], made_[3]["id"]}
    by = {"organization_id": org["id"], "digest": made_[0]["digest"]}
    assert [
        a["id"] for a in envelope(client.get("/v1/assets", params=by, headers=org["auth"]))["data"]
    ] == [made_[0]["id"]]
    bad = client.get("/v1/assets", params={**by, "digest": "nope"}, headers=org["auth"])
    assert envelope(bad)["error"]["details"]["path"] == "query.digest"


def test_another_tenant_sees_nothing_and_roles_bound_what_each_may_do(
    client: httpx.Client, org: dict
) -> None:
    asset = made(upload(client, org, b"private"))
    stranger = signup(client)
    for method, suffix in (("GET", ""), ("GET", "/content"), ("GET", "/url"), ("DELETE", "")):
        got = client.request(method, f"/v1/assets/{asset['id']}{suffix}", headers=bearer(stranger))
        assert got.status_code == 404, (method, suffix)
    elsewhere = create_org(client, stranger, "Stranger Inc")
    key = create_key(client, stranger, elsewhere["id"], scopes=["assets.read", "assets.write"])
    as_key = {"Authorization": f"Bearer {key['key']}"}
    assert client.get(f"/v1/assets/{asset['id']}/content", headers=as_key).status_code == 404

    viewer = signup(client)
    add_member(client, org["owner"], org["id"], viewer, "viewer")
    assert (
        client.get(f"/v1/assets/{asset['id']}/content", headers=bearer(viewer)).content
        == b"private"
    )
    refused = upload(client, {**org, "auth": bearer(viewer)}, b"nope")
    assert refused.status_code == 403
    assert client.delete(f"/v1/assets/{asset['id']}", headers=bearer(viewer)).status_code == 403

    reader = create_key(client, org["owner"], org["id"], scopes=["assets.read"])
    writer = create_key(client, org["owner"], org["id"], scopes=["assets.write"])
    read_auth = {"Authorization": f"Bearer {reader['key']}"}
    write_auth = {"Authorization": f"Bearer {writer['key']}"}
    assert client.get(f"/v1/assets/{asset['id']}", headers=read_auth).status_code == 200
    key_made = client.post(
        "/v1/assets", params={"name": "by key"}, content=b"k", headers=write_auth
    )
    assert made(key_made)["created_by"] == f"api_key:{writer['id']}"
    assert (
        client.post("/v1/assets", params={"name": "x"}, content=b"k", headers=read_auth).status_code
        == 403
    )


# --- a server with a small upload limit ---------------------------------------------------

LIMIT = 1024 * 1024


@pytest.fixture(scope="module")
def small(database_url: str, server_env: dict, tmp_path_factory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("assets_small")
    with own_storage(database_url, server_env, "assets") as env:
        env = {
            **env,
            "TREADLE_PORT": str(free_port()),
            "TREADLE_ASSET_MAX_BYTES": str(LIMIT),
            "TREADLE_ASSET_LINK_MAX_TTL_SECONDS": "120",
            "TREADLE_DATA_DIR": str(tmp / "data"),
        }
        server = start_server("granian", env, tmp / "server.log")
        yield server
        server.stop()


@pytest.mark.parametrize("declared", [True, False])
def test_an_upload_over_the_limit_is_413_and_leaves_nothing(small: Server, declared: bool) -> None:
    with small.client() as client:
        owner = signup(client)
        org = {**create_org(client, owner), "auth": bearer(owner)}
        data = b"x" * (LIMIT + 1)
        body: Any = data if declared else iter([data[:LIMIT], data[LIMIT:]])
        got = upload(client, org, body)
        assert (got.status_code, error_code(got)) == (413, "payload_too_large")
        assert envelope(got)["error"]["details"]["limit_bytes"] == LIMIT
        exactly = made(upload(client, org, iter([data[:LIMIT]])))
        assert exactly["size"] == LIMIT
        listed = client.get(
            "/v1/assets", params={"organization_id": org["id"]}, headers=org["auth"]
        )
        assert [a["id"] for a in envelope(listed)["data"]] == [exactly["id"]]
        tmp = Path(small.env["TREADLE_DATA_DIR"]) / "assets" / "tmp"
        assert list(tmp.iterdir()) == []
        too_long = client.get(
            f"/v1/assets/{exactly['id']}/url", params={"ttl_seconds": 121}, headers=org["auth"]
        )
        assert envelope(too_long)["error"]["details"]["path"] == "query.ttl_seconds"


# --- Robyn ---------------------------------------------------------------------------------


@pytest.mark.robyn
def test_robyn_takes_a_raw_upload_whole_and_serves_it(robyn_server: Server) -> None:
    with robyn_server.client() as client:
        owner = signup(client)
        org = {**create_org(client, owner), "auth": bearer(owner)}
        data = bytes(range(256)) * 64  # not UTF-8: taken as bytes on this route
        asset = made(upload(client, org, data))
        assert asset["digest"] == digest_of(data)
        got = client.get(f"/v1/assets/{asset['id']}/content", headers=org["auth"])
        assert (got.status_code, got.content) == (200, data)
        part = client.get(
            f"/v1/assets/{asset['id']}/content", headers={**org["auth"], "range": "bytes=0-3"}
        )
        assert (part.status_code, part.content) == (206, data[:4])
        form = client.post(
            "/v1/assets",
            params={"organization_id": org["id"]},
            files={"file": ("a.bin", data, "application/octet-stream")},
            headers=org["auth"],
        )
        assert form.status_code == 415  # Robyn rewrites multipart bodies
