-- Jobs and their worker leases, usage records, and the outbox of domain events.

CREATE TABLE jobs (
    id                uuid PRIMARY KEY,
    organization_id   uuid NOT NULL REFERENCES organizations (id),
    team_id           uuid,
    type              text NOT NULL,
    status            text NOT NULL DEFAULT 'queued'
                      CHECK (status IN ('queued', 'running', 'succeeded', 'dead', 'canceled')),
    priority          smallint NOT NULL DEFAULT 0,
    input             jsonb NOT NULL DEFAULT '{}'::jsonb,
    labels            jsonb NOT NULL DEFAULT '{}'::jsonb,
    estimated_units   numeric NOT NULL DEFAULT 1,
    -- The job type's pricing when it was submitted: later price changes do not apply.
    pricing           jsonb NOT NULL,
    cost_estimate     numeric NOT NULL DEFAULT 0,
    cost              numeric,
    max_attempts      integer NOT NULL,
    attempts          integer NOT NULL DEFAULT 0,
    lease_seconds     integer NOT NULL,
    -- When it may next be claimed: submission time, or after a failure's backoff.
    run_after         timestamptz NOT NULL DEFAULT now(),
    lease_owner       text,
    lease_expires_at  timestamptz,
    result            jsonb,
    artifact_url      text,
    error_code        text,
    error_message     text,
    submitted_by      text NOT NULL,
    api_key_id        uuid REFERENCES api_keys (id),
    -- A retry after a crash finds the committed job by its Idempotency-Key.
    idempotency_key   text,
    fingerprint       text,
    queued_at         timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    completed_at      timestamptz,
    canceled_at       timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, submitted_by, idempotency_key)
);
-- What a claim scans: the ready jobs of one organization, best first.
CREATE INDEX jobs_ready ON jobs (organization_id, priority DESC, run_after, id)
    WHERE status = 'queued';
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_listing ON jobs (organization_id, created_at DESC, id DESC);

CREATE TABLE usage_records (
    id               bigserial PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    team_id          uuid,
    principal_id     text,
    api_key_id       uuid,
    job_id           uuid,
    job_type         text,
    metric           text NOT NULL,
    quantity         numeric NOT NULL,
    cost             numeric NOT NULL DEFAULT 0,
    recorded_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_records_time ON usage_records (organization_id, recorded_at);
CREATE INDEX usage_records_job ON usage_records (job_id) WHERE job_id IS NOT NULL;

-- Domain events, written in the transaction of the change, relayed to a Redis stream.
CREATE TABLE event_outbox (
    id               bigserial PRIMARY KEY,
    organization_id  uuid NOT NULL,
    topic            text NOT NULL,
    job_id           uuid,
    run_id           uuid,
    payload          bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    stream_id        text,
    relayed_at       timestamptz
);
CREATE INDEX event_outbox_pending ON event_outbox (id) WHERE relayed_at IS NULL;
CREATE INDEX event_outbox_relayed ON event_outbox (relayed_at) WHERE relayed_at IS NOT NULL;
