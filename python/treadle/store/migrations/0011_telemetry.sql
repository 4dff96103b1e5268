-- Issue 11: edge agents and their telemetry.

CREATE TABLE edge_agents (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    name             text NOT NULL,
    version          text NOT NULL DEFAULT '',
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    enrollment_id    uuid NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz
);
CREATE INDEX edge_agents_listing ON edge_agents (organization_id, created_at DESC, id DESC);

-- A single-use enrollment token, stored only as its keyed hash.
CREATE TABLE edge_agent_enrollments (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    token_hash       text NOT NULL UNIQUE,
    name             text NOT NULL DEFAULT '',
    created_by       uuid NOT NULL REFERENCES users (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    used_at          timestamptz,
    agent_id         uuid REFERENCES edge_agents (id)
);

-- An agent's credential is an API key of its organization (scopes telemetry.ingest and
-- edge_agents.policy) that names it: verification, rotation with an overlap and
-- revocation are the API keys' own.
ALTER TABLE api_keys ADD COLUMN edge_agent_id uuid REFERENCES edge_agents (id);

-- One row per accepted batch, in the transaction of its COPY, with its answer.
CREATE TABLE telemetry_batches (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    agent_id         uuid NOT NULL REFERENCES edge_agents (id),
    accepted         integer NOT NULL,
    rejected         integer NOT NULL,
    rejections       jsonb NOT NULL,
    bytes            integer NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX telemetry_batches_listing
    ON telemetry_batches (organization_id, created_at DESC, id DESC);
CREATE INDEX telemetry_batches_agent ON telemetry_batches (agent_id, created_at DESC);

-- Per agent: what its batches brought, kept current by each ingest (one row update).
CREATE TABLE telemetry_agent_status (
    agent_id         uuid PRIMARY KEY REFERENCES edge_agents (id),
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    last_batch_id    uuid,
    last_batch_at    timestamptz,
    batches          bigint NOT NULL DEFAULT 0,
    accepted         bigint NOT NULL DEFAULT 0,
    rejected         bigint NOT NULL DEFAULT 0,
    last_error       text,
    last_error_at    timestamptz
) WITH (fillfactor = 70);

-- Events: one partition per organization, each split by day of arrival, so that an
-- organization's retention drops whole partitions (treadle.store.telemetry creates them).
-- Written with binary COPY straight into the day's partition.
CREATE TABLE telemetry_events (
    organization_id  uuid NOT NULL,
    agent_id         uuid NOT NULL,
    batch_id         uuid NOT NULL,
    seq              integer NOT NULL,
    event_id         text,
    type             text NOT NULL,
    ts               timestamptz NOT NULL,
    attributes       jsonb NOT NULL,
    received_at      timestamptz NOT NULL
) PARTITION BY LIST (organization_id);
CREATE INDEX telemetry_events_listing ON telemetry_events (received_at DESC, batch_id, seq);

-- The partitions that exist, so that a process learns them with one query.
CREATE TABLE telemetry_partitions (
    organization_id  uuid NOT NULL,
    day              date NOT NULL,
    name             text NOT NULL UNIQUE,
    PRIMARY KEY (organization_id, day)
);
