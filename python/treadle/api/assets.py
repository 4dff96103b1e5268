"""Assets routes (issue 13): streamed uploads, ranged downloads, signed links.

Downloads answer ``Range`` (one range of bytes: 206; unsatisfiable or malformed: 416;
other units or several ranges: the whole content, as RFC 9110 allows), ``If-None-Match``
(304) and ``If-Range``, with the digest as a strong ETag. Content is served as an
attachment with ``nosniff`` and a sandboxing CSP: what tenants upload never runs as a page
of the API's origin.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from treadle.api.asset_downloads import serve
from treadle.api.asset_uploads import (
    DIGEST,
    LABEL_KEY,
    FormFile,
    boundary_of,
    content_type_of,
    digest_of,
    labels_of,
    name_of,
)
from treadle.api.common import (
    TIME_CURSOR_PARAMS,
    actor,
    int_param,
    limit_of,
    path_id,
    time_cursor,
    time_page,
)
from treadle.api.scopes import caller_organization
from treadle.services.authz import Scope
from treadle.web.errors import ApiError
from treadle.web.openapi import IDEMPOTENCY_KEY
from treadle.web.request import Request
from treadle.web.response import Response
from treadle.web.routing import Param, Route

DEFAULT_TTL = 3600
_KEY = re.compile(IDEMPOTENCY_KEY)
_HEX = re.compile(r"^[0-9a-f]{64}(?!\n)$")
_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?!\n)$"


class Asset(msgspec.Struct):
    id: UUID
    organization_id: UUID
    name: str
    content_type: str
    size: int
    # blake3: and 64 hex digits; also the content's ETag.
    digest: str
    labels: dict[str, str]
    # The principal that uploaded it (user:<id> or api_key:<id>).
    created_by: str
    created_at: datetime


class AssetLink(msgspec.Struct):
    # Works with no credentials until expires_at, or until the asset is deleted.
    url: str
    path: str
    expires_at: datetime
    ttl_seconds: int


# --- scopes ---------------------------------------------------------------------------


async def asset_scope(req: Request) -> Scope:
    asset = await req.app.assets.get(path_id(req))
    req.data = asset  # the row, for the handler: read once
    return Scope(asset["organization_id"], "asset", str(asset["id"]))


# --- handlers -------------------------------------------------------------------------


def _idempotency_key(req: Request) -> str | None:
    key = req.headers.get("idempotency-key")
    if key is None and not req.headers.has("idempotency-key"):
        return None
    if key is None or not _KEY.match(key):
        raise ApiError.validation(
            "Idempotency-Key must be 1 to 255 visible ASCII characters", "header.Idempotency-Key"
        )
    return key


async def upload(req: Request) -> Any:
    assets = req.app.assets
    body = req.stream(assets.max_bytes)
    content_type = req.headers.get("content-type") or ""
    boundary = boundary_of(content_type) if content_type else None
    key = _idempotency_key(req)
    meta: dict[str, Any] = {}
    if boundary is not None:
        body = FormFile(boundary, meta).chunks(body)
    else:
        meta.update(
            name=name_of(req.query_value("name"), "query.name"),
            content_type=content_type_of(content_type or None, "header.Content-Type"),
            labels=labels_of(req.query.get("label", []), "query.label"),
        )
    asset, made = await assets.upload(actor(req), req.scope.organization_id, meta, body, key)
    if not made:
        req.response_headers.append(("idempotent-replayed", "true"))
    return asset


async def list_assets(req: Request) -> Any:
    limit = limit_of(req)
    digest = req.query_value("digest")
    rows = await req.app.assets.in_org(
        req.scope.organization_id,
        limit,
        time_cursor(req),
        digest_of(digest, "query.digest") if digest else None,
        labels_of(req.query.get("label", []), "query.label"),
    )
    return time_page(rows, limit)


async def get(req: Request) -> Any:
    return req.data


async def delete(req: Request) -> Any:
    return await req.app.assets.delete(actor(req), req.data["id"])


async def by_digest(req: Request) -> Any:
    digest = req.params["digest"]
    if not re.match(DIGEST, digest):
        raise ApiError.not_found("no asset with this digest (give blake3: and 64 hex digits)")
    if not await req.app.assets.has_digest(req.scope.organization_id, digest):
        raise ApiError.not_found(f"this organization has no content with digest {digest}")
    return Response(200, b"", content_type="application/octet-stream")


async def link(req: Request) -> Any:
    assets = req.app.assets
    ttl = int_param(req, "ttl_seconds", min(DEFAULT_TTL, assets.max_ttl), 1, assets.max_ttl)
    return await assets.link(req.data, ttl)


async def content(req: Request) -> Any:
    return await serve(req, req.data)


async def download(req: Request) -> Any:
    """A signed link: checked with no database read, then served as ``content`` is."""
    values = {}
    for name in ("org", "digest", "expires", "sig"):
        value = req.query_value(name)
        if not value:
            raise ApiError.validation(f"{name} is missing: use the whole signed link", name)
        values[name] = value
    asset_id, org = req.params["id"], values["org"]
    if not (
        re.match(_UUID, asset_id)
        and re.match(_UUID, org)
        and _HEX.match(values["digest"])
        and values["expires"].isascii()
        and values["expires"].isdigit()
        and len(values["expires"]) <= 12
        and _HEX.match(values["sig"])
    ):
        raise ApiError.forbidden("this is not a signed link; ask for a new link")
    asset = await req.app.assets.by_link(
        asset_id, org, "blake3:" + values["digest"], int(values["expires"]), values["sig"]
    )
    return await serve(req, asset)


# --- the route table ------------------------------------------------------------------

ORG_PARAM = Param("organization_id", "the organization (signed-in users; an API key has its own)")
LABEL_PARAM = Param(
    "label",
    "key=value; repeat for more (at most 32)",
    {"type": "string", "maxLength": 320, "pattern": LABEL_KEY[:-7] + "=[^\\x00-\\x1f\\x7f]*$"},
)
ASSET = "/v1/assets/{id}"
_UPLOAD_BODY: dict[str, Any] = {
    "application/octet-stream": {"type": "string", "format": "binary"},
    "multipart/form-data": {
        "type": "object",
        "required": ["file"],
        "properties": {
            "name": {"type": "string", "maxLength": 255},
            "label": {"type": "array", "items": {"type": "string"}},
            "file": {"type": "string", "format": "binary"},
        },
    },
}


def _route(method: str, path: str, handler: Any, summary: str, **kw: Any) -> Route:
    return Route(method, path, handler, summary, "assets", auth="any", **kw)


def _content_route(method: str) -> Route:
    return _route(
        method,
        ASSET + "/content",
        content,
        "The asset's bytes (Range, If-Range, If-None-Match; the digest is the ETag)",
        raw=True,
        content_type="application/octet-stream",
        permission="assets.read",
        scope=asset_scope,
        errors=(416,),
    )


def _download_route(method: str) -> Route:
    return Route(
        method,
        ASSET + "/download",
        download,
        "The asset's bytes through a signed link (no credentials; as /content answers)",
        "assets",
        auth="none",
        raw=True,
        content_type="application/octet-stream",
        params=(
            Param("org", "from the signed link", {"type": "string"}, required=True),
            Param("digest", "from the signed link", {"type": "string"}, required=True),
            Param("expires", "from the signed link", {"type": "string"}, required=True),
            Param("sig", "from the signed link", {"type": "string"}, required=True),
        ),
        errors=(403, 404, 416),
    )


ROUTES: list[Route] = [
    _route(
        "POST",
        "/v1/assets",
        upload,
        "Upload an asset, streamed: the raw body (name and labels in the query, its type in"
        " Content-Type) or multipart/form-data (fields name and label, then the part"
        " 'file'). The same content is stored once per organization. Takes an"
        " Idempotency-Key header: a retry with it returns the asset it made",
        raw_body=_UPLOAD_BODY,
        stream_body=True,
        idempotency="none",
        response=Asset,
        status=201,
        params=(
            ORG_PARAM,
            Param("name", "the asset's name (raw bodies; one line, at most 255 characters)"),
            LABEL_PARAM,
        ),
        permission="assets.write",
        scope=caller_organization,
        errors=(422,),
    ),
    _route(
        "GET",
        "/v1/assets",
        list_assets,
        "The organization's assets, newest first",
        response=list[Asset],
        params=(
            *TIME_CURSOR_PARAMS,
            ORG_PARAM,
            Param("digest", "only assets of this content", {"type": "string", "pattern": DIGEST}),
            LABEL_PARAM,
        ),
        permission="assets.read",
        scope=caller_organization,
    ),
    _route(
        "GET",
        ASSET,
        get,
        "An asset's metadata",
        response=Asset,
        permission="assets.read",
        scope=asset_scope,
    ),
    _content_route("GET"),
    _content_route("HEAD"),
    _route(
        "HEAD",
        "/v1/assets/by-digest/{digest}",
        by_digest,
        "200 when the organization stores this content (blake3:<hex>), 404 when not:"
        " upload only what is missing",
        raw=True,
        content_type="application/octet-stream",
        params=(ORG_PARAM,),
        permission="assets.read",
        scope=caller_organization,
    ),
    _route(
        "GET",
        ASSET + "/url",
        link,
        "A signed download link that works without credentials until it expires or the"
        " asset is deleted",
        response=AssetLink,
        params=(
            Param(
                "ttl_seconds",
                "how long the link works (default 3600, at most asset_link_max_ttl_seconds)",
                {"type": "integer", "minimum": 1, "maximum": 7 * 86400},
            ),
        ),
        permission="assets.read",
        scope=asset_scope,
    ),
    _download_route("GET"),
    _download_route("HEAD"),
    _route(
        "DELETE",
        ASSET,
        delete,
        "Delete an asset; its links stop working, and its content goes with the last asset"
        " that had it",
        response=Asset,
        permission="assets.write",
        scope=asset_scope,
    ),
]
