-- Issue 13: model providers configured per organization, their calls, and the monthly
-- spend that budgets are checked against.

CREATE TABLE provider_configs (
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    name             text NOT NULL,
    -- openai (chat completions: OpenAI, vLLM, Ollama, OpenRouter...) or anthropic.
    kind             text NOT NULL CHECK (kind IN ('openai', 'anthropic')),
    base_url         text NOT NULL,
    -- The name of the organization secret holding the API key (never the key itself).
    credential       text,
    -- The price table: [{name, upstream, input_price, output_price, max_output_tokens}],
    -- prices in the organization's currency per million tokens, under price_version.
    models           jsonb NOT NULL,
    price_version    text NOT NULL,
    timeout_seconds  double precision NOT NULL,
    connect_timeout_seconds double precision NOT NULL,
    max_retries      integer NOT NULL,
    enabled          boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    updated_by       text,
    PRIMARY KEY (organization_id, name)
);

-- One row per call made through the gateway (a fallback's attempts are one call), with
-- what the provider reported; its cost is also in usage_records (metrics provider.*).
CREATE TABLE provider_calls (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    team_id          uuid,
    principal_id     text,
    api_key_id       uuid,
    request_id       text NOT NULL,
    provider         text NOT NULL,
    model            text NOT NULL,
    price_version    text NOT NULL,
    stream           boolean NOT NULL,
    -- ok, error (error_code says which), or cancelled (the client left a stream).
    status           text NOT NULL,
    error_code       text,
    attempts         integer NOT NULL,
    input_tokens     bigint NOT NULL,
    output_tokens    bigint NOT NULL,
    cost             numeric NOT NULL,
    latency_ms       double precision NOT NULL,
    first_token_ms   double precision,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX provider_calls_listing ON provider_calls (organization_id, created_at DESC);

-- The cost of an organization's provider calls per calendar month (UTC): one row to read
-- and bump per call, rather than a sum over the month's usage records. A call with a
-- budget in force charges its estimate here before the provider is called (so that
-- concurrent calls cannot overrun the cap together) and the difference to its real cost
-- once it ends.
CREATE TABLE provider_spend (
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    month            date NOT NULL,
    cost             numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, month)
);
