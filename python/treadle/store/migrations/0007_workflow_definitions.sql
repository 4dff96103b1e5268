-- Issue 10: workflow definitions. A definition is a named DAG of typed nodes; posting a name
-- again makes its next version, and a run pins the version it started on, so a version is
-- never changed once written.

CREATE TABLE workflow_definitions (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    name             text NOT NULL,
    version          integer NOT NULL CHECK (version >= 1),
    description      text NOT NULL DEFAULT '',
    -- The validated definition: nodes with their edges, templates and settings.
    spec             jsonb NOT NULL,
    node_count       integer NOT NULL,
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, name, version)
);
-- The listing: newest first within an organization, optionally by name.
CREATE INDEX workflow_definitions_listing
    ON workflow_definitions (organization_id, created_at DESC, id DESC);
