-- Issue 10: approval gates, map nodes and child runs.

-- An approval node that has started is a gate: who may decide it is copied from the
-- definition (so that listing the gates a caller may decide is one indexed query), and each
-- decision is a row of its own, one per user.
CREATE TABLE workflow_approvals (
    id               uuid NOT NULL UNIQUE,
    run_id           uuid NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    node             text NOT NULL,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'approved', 'rejected', 'expired',
                                       'canceled')),
    users            uuid[] NOT NULL,
    teams            uuid[] NOT NULL,
    roles            text[] NOT NULL,
    required         integer NOT NULL,
    allow_submitter  boolean NOT NULL,
    submitted_by     text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    closed_at        timestamptz,
    PRIMARY KEY (run_id, node),
    FOREIGN KEY (run_id, node) REFERENCES workflow_nodes (run_id, node) ON DELETE CASCADE
);
CREATE INDEX workflow_approvals_listing
    ON workflow_approvals (organization_id, created_at DESC, id DESC);

CREATE TABLE workflow_approval_decisions (
    run_id      uuid NOT NULL,
    node        text NOT NULL,
    user_id     uuid NOT NULL REFERENCES users (id),
    decision    text NOT NULL CHECK (decision IN ('approve', 'reject')),
    comment     text NOT NULL DEFAULT '',
    decided_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, node, user_id),
    FOREIGN KEY (run_id, node) REFERENCES workflow_approvals (run_id, node) ON DELETE CASCADE
);

-- A map node keeps its items and how many of them were dispatched and have finished; each
-- item is a job that names its index.
ALTER TABLE workflow_nodes ADD COLUMN items jsonb;
ALTER TABLE workflow_nodes ADD COLUMN dispatched integer;
ALTER TABLE workflow_nodes ADD COLUMN finished integer;
ALTER TABLE jobs ADD COLUMN workflow_item integer;

-- A workflow node waits for its child run; a child run names its parent. Neither locks
-- the other's row while holding its own (see treadle.services.workflow_runs): the sweeps
-- below find what is left to do.
ALTER TABLE workflow_nodes ADD COLUMN child_run_id uuid REFERENCES workflow_runs (id);
ALTER TABLE workflow_runs ADD COLUMN parent_run_id uuid REFERENCES workflow_runs (id);
ALTER TABLE workflow_runs ADD COLUMN parent_node text;
-- Neither index names a column that changes after the row's first update (status, say):
-- that keeps the updates of runs and nodes HOT (see 0010).
CREATE INDEX workflow_nodes_children ON workflow_nodes (child_run_id)
    WHERE child_run_id IS NOT NULL;
CREATE INDEX workflow_runs_children ON workflow_runs (parent_run_id)
    WHERE parent_run_id IS NOT NULL;
