-- Issue 10: workflow runs. A run pins one definition version; each node of it has a row,
-- and a node that runs a job names it (jobs.workflow_run_id, jobs.workflow_node), so the
-- run advances in the transaction that finishes the job. A delay is a row with fire_at,
-- swept by whichever process takes it (FOR UPDATE SKIP LOCKED).

CREATE TABLE workflow_runs (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    definition_id    uuid NOT NULL REFERENCES workflow_definitions (id),
    status           text NOT NULL DEFAULT 'created'
                     CHECK (status IN ('created', 'running', 'paused', 'succeeded', 'failed',
                                       'canceled')),
    input            jsonb NOT NULL DEFAULT '{}'::jsonb,
    output           jsonb,
    labels           jsonb NOT NULL DEFAULT '{}'::jsonb,
    error_code       text,
    error_message    text,
    submitted_by     text NOT NULL,
    api_key_id       uuid REFERENCES api_keys (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    completed_at     timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflow_runs_listing ON workflow_runs (organization_id, created_at DESC, id DESC);

CREATE TABLE workflow_nodes (
    run_id        uuid NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    node          text NOT NULL,
    status        text NOT NULL DEFAULT 'waiting'
                  CHECK (status IN ('waiting', 'running', 'succeeded', 'failed', 'skipped',
                                    'canceled')),
    outcome       text,
    output        jsonb,
    job_id        uuid,
    fire_at       timestamptz,
    -- A paused run's timers: the seconds each had left, counted again from resume.
    remaining     double precision,
    error_code    text,
    error_message text,
    started_at    timestamptz,
    completed_at  timestamptz,
    PRIMARY KEY (run_id, node)
);
CREATE INDEX workflow_nodes_timers ON workflow_nodes (fire_at)
    WHERE status = 'running' AND fire_at IS NOT NULL;

ALTER TABLE jobs ADD COLUMN workflow_run_id uuid REFERENCES workflow_runs (id);
ALTER TABLE jobs ADD COLUMN workflow_node text;
CREATE INDEX jobs_workflow ON jobs (workflow_run_id) WHERE workflow_run_id IS NOT NULL;
