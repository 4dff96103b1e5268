-- Issue 12: webhook endpoints and their deliveries, and what the operations views read.

CREATE TABLE webhook_endpoints (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    url              text NOT NULL,
    description      text NOT NULL DEFAULT '',
    -- Topic patterns, as event streams take them: a topic, a prefix ending in .*, or *.
    topics           text[] NOT NULL,
    enabled          boolean NOT NULL DEFAULT true,
    -- Deliver in event order, one in flight at a time.
    ordered          boolean NOT NULL DEFAULT false,
    -- The signing secret and, for a rotation's overlap, the one it replaced: sealed
    -- (AES-256-GCM under a key derived from the server's secret key), never stored plain.
    secret           bytea NOT NULL,
    previous_secret  bytea,
    previous_until   timestamptz,
    -- Since when every delivery has failed (NULL while the last one succeeded).
    failing_since    timestamptz,
    disabled_reason  text,
    created_by       uuid REFERENCES users (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_listing ON webhook_endpoints (organization_id, created_at DESC, id DESC);
-- What the relay joins each batch of events against.
CREATE INDEX webhook_endpoints_live ON webhook_endpoints (organization_id) WHERE enabled;

-- One row per (endpoint, event), made by the relay in the transaction that relays the
-- event (the unique key makes a second relay of it a no-op), or by a test send.
CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY,
    -- Event order within an endpoint (ordered endpoints deliver by it).
    seq              bigint GENERATED ALWAYS AS IDENTITY,
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    event_id         text,
    topic            text NOT NULL,
    body             bytea NOT NULL,
    -- pending: waiting for its next attempt; sending: leased to a sender until
    -- next_attempt_at (due again after, should that sender die); succeeded; dead.
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'succeeded', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_attempt_at  timestamptz,
    finished_at      timestamptz,
    response_status  integer,
    response_body    text,
    latency_ms       double precision,
    last_error       text,
    redrives         integer NOT NULL DEFAULT 0,
    UNIQUE (endpoint_id, event_id)
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02,
        autovacuum_analyze_scale_factor = 0.02);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status IN ('pending', 'sending');
CREATE INDEX webhook_deliveries_listing ON webhook_deliveries (endpoint_id, seq DESC);
-- Ordered endpoints deliver their oldest unfinished delivery first.
CREATE INDEX webhook_deliveries_head ON webhook_deliveries (endpoint_id, seq)
    WHERE status IN ('pending', 'sending');
CREATE INDEX webhook_deliveries_dead ON webhook_deliveries (organization_id, finished_at DESC)
    WHERE status = 'dead';

-- Operations views: dead jobs, listed newest first across organizations or in one.
CREATE INDEX jobs_dead ON jobs (organization_id, (coalesce(completed_at, updated_at)) DESC)
    WHERE status = 'dead';
