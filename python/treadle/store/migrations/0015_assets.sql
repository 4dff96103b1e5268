-- Issue 13: content-addressed assets.

-- Each content an organization stores, once: its bytes live in the asset store (a file
-- under the data directory, or an S3 object) under the organization and the digest. A
-- blob row exists exactly while an asset points at it; changes to a blob's row and to its
-- stored bytes are serialized by an advisory lock on (organization, digest).
CREATE TABLE asset_blobs (
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    -- 'blake3:' and 64 lowercase hex digits, computed by the server while the bytes came in.
    digest           text NOT NULL CHECK (digest ~ '^blake3:[0-9a-f]{64}$'),
    size             bigint NOT NULL CHECK (size >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, digest)
);

CREATE TABLE assets (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL,
    digest           text NOT NULL,
    name             text NOT NULL,
    content_type     text NOT NULL,
    size             bigint NOT NULL,
    labels           jsonb NOT NULL DEFAULT '{}',
    -- The principal that uploaded it, as the authorizer names it (user:<id>, api_key:<id>).
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- An upload's Idempotency-Key and the fingerprint of what it made (name, type, labels,
    -- digest): a retry with the key finds this asset rather than making another.
    idempotency_key  text,
    fingerprint      text,
    FOREIGN KEY (organization_id, digest) REFERENCES asset_blobs (organization_id, digest)
);
CREATE INDEX assets_listing ON assets (organization_id, created_at DESC, id DESC);
CREATE INDEX assets_by_digest ON assets (organization_id, digest);
CREATE UNIQUE INDEX assets_idempotency ON assets (organization_id, created_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
