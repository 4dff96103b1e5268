-- Issue 13: organizations' encrypted credentials (envelope encryption).
--
-- Each organization has one data key (32 random bytes) that seals its values; the data
-- key is stored wrapped (sealed) under a platform key-encryption key of some version.
-- `treadle secrets rotate-key` moves the current version on and re-wraps every data key
-- under it; servers open data keys of any version they can derive, so nothing stops.

-- The version new data keys are wrapped under: one row. Creating a data key reads it
-- FOR SHARE, so a rotation's UPDATE waits for creations in flight, and every creation
-- that starts after it sees the new version.
CREATE TABLE secret_keyring (
    id               boolean PRIMARY KEY DEFAULT true CHECK (id),
    current_version  integer NOT NULL DEFAULT 1 CHECK (current_version >= 1)
);
INSERT INTO secret_keyring DEFAULT VALUES;

-- Per version, a known value sealed under that version's key: a server whose key of a
-- version differs (TREADLE_SECRETS_KEYS not the same everywhere) refuses to wrap under
-- it, instead of wrapping data keys no other server can open.
CREATE TABLE secret_key_checks (
    version      integer PRIMARY KEY,
    check_value  bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE secret_data_keys (
    organization_id  uuid PRIMARY KEY REFERENCES organizations (id),
    key_version      integer NOT NULL,
    -- The data key sealed under the key-encryption key of key_version, bound to the
    -- organization (a wrapped key copied onto another organization's row does not open).
    wrapped          bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    rewrapped_at     timestamptz
);
-- What a rotation looks for: data keys still under an older version.
CREATE INDEX secret_data_keys_version ON secret_data_keys (key_version);

CREATE TABLE organization_secrets (
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    name             text NOT NULL,
    -- 1 when created, one more at each replacement; bound into the sealed value.
    version          integer NOT NULL,
    -- The value sealed under the organization's data key, bound to (organization, name,
    -- version): never stored plain, never returned by the API.
    sealed           bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- Who set the current version: a user's or an API key's id, and which of the two.
    updated_by       text,
    updated_by_type  text NOT NULL,
    PRIMARY KEY (organization_id, name)
);
