-- Organizations, members, teams, invitations, ACL entries, the audit trail, denials.

CREATE TABLE organizations (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    slug         text NOT NULL,
    settings     jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Bumped by every change that can alter an authorization decision in this organization.
    authz_revision bigint NOT NULL DEFAULT 1,
    created_by   uuid NOT NULL REFERENCES users (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    archived_at  timestamptz
);
CREATE UNIQUE INDEX organizations_slug ON organizations (slug);

CREATE TABLE memberships (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    user_id      uuid NOT NULL REFERENCES users (id),
    role         text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE teams (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    name            text NOT NULL,
    description     text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
CREATE UNIQUE INDEX teams_name_live ON teams (organization_id, lower(name)) WHERE deleted_at IS NULL;

CREATE TABLE team_members (
    team_id         uuid NOT NULL REFERENCES teams (id),
    user_id         uuid NOT NULL REFERENCES users (id),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    role            text NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_org ON team_members (organization_id, user_id);

CREATE TABLE invitations (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    email           text NOT NULL,
    role            text NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    token_hash      text NOT NULL UNIQUE,
    invited_by      uuid NOT NULL REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    accepted_at     timestamptz,
    accepted_by     uuid REFERENCES users (id),
    revoked_at      timestamptz
);
-- At most one pending invitation per address and organization.
CREATE UNIQUE INDEX invitations_pending ON invitations (organization_id, email)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;
CREATE INDEX invitations_org_created ON invitations (organization_id, created_at);

CREATE TABLE acl_entries (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    resource_type   text NOT NULL,
    resource_id     text NOT NULL,
    action          text NOT NULL,
    subject         text NOT NULL,
    effect          text NOT NULL CHECK (effect IN ('allow', 'deny')),
    created_by      uuid,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX acl_entries_org ON acl_entries (organization_id);

CREATE TABLE audit_logs (
    id              bigserial PRIMARY KEY,
    organization_id uuid,
    actor_id        text,
    principal_type  text NOT NULL,
    action          text NOT NULL,
    target_type     text NOT NULL,
    target_id       text NOT NULL,
    before          jsonb,
    after           jsonb,
    request_id      text NOT NULL DEFAULT '',
    ip              text NOT NULL DEFAULT '',
    user_agent      text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_logs_org_id ON audit_logs (organization_id, id DESC);

CREATE TABLE authz_denials (
    id              bigserial PRIMARY KEY,
    organization_id uuid NOT NULL,
    actor_id        text NOT NULL,
    principal_type  text NOT NULL,
    action          text NOT NULL,
    resource        text NOT NULL,
    reason          text NOT NULL,
    method          text NOT NULL,
    route           text NOT NULL,
    request_id      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX authz_denials_org_id ON authz_denials (organization_id, id DESC);
