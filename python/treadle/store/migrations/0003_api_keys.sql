-- API keys: a key has one or more secrets (rotation keeps the old one alive for a while).

CREATE TABLE api_keys (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    name             text NOT NULL,
    environment      text NOT NULL CHECK (environment IN ('live', 'test')),
    display_prefix   text NOT NULL,
    scopes           text[] NOT NULL,
    expires_at       timestamptz,
    rate_limit_policy text,
    created_by       uuid NOT NULL REFERENCES users (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    disabled_at      timestamptz,
    revoked_at       timestamptz,
    last_used_at     timestamptz
);
CREATE INDEX api_keys_org ON api_keys (organization_id, created_at);

CREATE TABLE api_key_secrets (
    key_hash    text PRIMARY KEY,
    key_id      uuid NOT NULL REFERENCES api_keys (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Set when the key is rotated: the old secret works until then.
    expires_at  timestamptz
);
CREATE INDEX api_key_secrets_key ON api_key_secrets (key_id);

CREATE TABLE api_key_usage (
    key_id    uuid NOT NULL REFERENCES api_keys (id),
    day       date NOT NULL,
    route     text NOT NULL,
    requests  bigint NOT NULL,
    PRIMARY KEY (key_id, day, route)
);
