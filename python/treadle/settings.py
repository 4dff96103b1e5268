"""The one settings object. Every field is read from a ``TREADLE_<NAME>`` variable."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

PREFIX = "TREADLE_"
DEFAULT_CONNECTIONS_PER_WORKER = 4096
# Keys published in this repository (docker/compose.yaml): anyone could sign with them.
PLACEHOLDER_SECRET_KEYS = frozenset({"change-me-to-64-hex-chars"})
MIN_SECRET_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 3001
    workers: int = 1
    server: str = "granian"
    data_dir: str = "./.treadle"
    database_url: str = ""
    redis_url: str = ""
    redis_prefix: str = "treadle:"
    secret_key: str = ""
    public_url: str = ""
    max_body_bytes: int = 1_048_576
    # Every decoded body, whatever its format: how deep it may nest, how many values it holds.
    max_body_depth: int = 32
    max_body_nodes: int = 100_000
    # Batch routes (POST /v1/jobs/batch, /complete, /fail, /heartbeat: up to 1,000 items).
    max_batch_body_bytes: int = 16_777_216
    max_batch_body_nodes: int = 1_000_000
    access_log: bool = True
    log_level: str = "info"
    db_pool_min: int = 2
    db_pool_max: int = 10
    # psycopg's prepare_threshold: a statement is prepared on a connection after this many
    # runs of it there (0: at once); -1 never prepares (e.g. behind PgBouncer in
    # transaction mode). Preparing halves PostgreSQL's CPU per one-row read; pools of 4 to
    # 10 read fastest per worker (bench/db_read_cpu.py).
    db_prepare_threshold: int = 5
    shutdown_timeout: float = 8.0
    # Granian: the listen backlog, and how many connections (open event streams included)
    # one worker holds at once; 0 means 4,096. Half-sent request heads and idle keep-alive
    # connections are closed after http_header_timeout_seconds.
    backlog: int = 1024
    backpressure: int = 0
    http_header_timeout_seconds: float = 10.0
    http_keepalive: bool = True
    # accounts and sessions
    access_token_ttl: int = 900
    refresh_token_ttl: int = 30 * 86400
    verify_token_ttl: int = 48 * 3600
    reset_token_ttl: int = 3600
    login_max_failures: int = 5
    login_lockout_seconds: int = 900
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 1
    # Rate limits: "local" (in-process), "redis" (shared by every process), or "auto":
    # local with one worker, redis with more.
    rate_limit_mode: str = "auto"
    rate_limit_user: str = "1200/60"
    rate_limit_api_key: str = "6000/60"
    # Unauthenticated routes (signup, login, password flows...), per client address.
    rate_limit_anonymous: str = "30/60"
    # No organization-defined policy may allow more than this.
    rate_limit_max: str = "100000/60"
    # Comma-separated IPs/CIDRs whose X-Forwarded-For / Forwarded headers are believed.
    trusted_proxies: str = ""
    # argon2 runs at most this many at once per process (0: the CPU count), with at most
    # password_hash_queue more waiting; past that, 503.
    password_hash_concurrency: int = 0
    password_hash_queue: int = 64
    retention_sweep_seconds: float = 3600.0
    # How long sent (or failed) mail and platform-level audit rows (no organization) are
    # kept; organizations set their own audit retention.
    mail_keep_days: int = 30
    platform_audit_keep_days: int = 365
    idempotency_keep_seconds: int = 86400
    invitation_ttl_days: int = 7
    invitations_per_hour: int = 50
    smtp_url: str = ""
    mail_from: str = "treadle@localhost"
    # jobs: a failed attempt waits job_backoff_seconds * 2**(attempt-1) (with jitter,
    # at most job_backoff_max_seconds); expired leases are reaped this often.
    job_backoff_seconds: float = 2.0
    job_backoff_max_seconds: float = 3600.0
    # Workflow definitions: nodes per definition, and items one map node may fan out to.
    workflow_max_nodes: int = 200
    workflow_max_map_items: int = 1000
    # A run's input and a signal's payload (413 past it), and what a map node's joined
    # results may take (the node fails with output_too_large past it), as JSON bytes.
    workflow_max_input_bytes: int = 256 * 1024
    workflow_max_output_bytes: int = 8 * 1024 * 1024
    # Telemetry events: attributes per event, the bytes of an attribute's key and of a
    # string value, and how old or how far ahead of the server's clock a timestamp may be.
    # Batch sizes are each organization's policy (settings "telemetry").
    telemetry_max_attributes: int = 64
    telemetry_max_key_bytes: int = 128
    telemetry_max_value_bytes: int = 4096
    telemetry_max_age_seconds: int = 7 * 86400
    telemetry_max_future_seconds: int = 300
    # How often each process looks for delay nodes whose time has come.
    workflow_timer_seconds: float = 0.5
    job_reap_seconds: float = 1.0
    # live events: whether this process relays the outbox to Redis (one relays at a time),
    # the stream's length bound, and per-process hub sizes.
    event_relay: bool = True
    event_stream_max: int = 100_000
    event_ring_size: int = 10_000
    event_queue_size: int = 1_000
    event_keepalive_seconds: float = 15.0
    # streams are woken in rounds at least this far apart, each send carrying what
    # arrived meanwhile (see treadle.bus.pacer)
    event_wake_ms: float = 10.0
    event_outbox_keep_hours: int = 24
    # open event streams (SSE and WebSocket) per principal and per organization, counted
    # across processes in Redis
    event_streams_per_principal: int = 20
    event_streams_per_organization: int = 1000
    # Open streams one process serves; 0: half its connection budget, so that streams never
    # take the slots API requests need.
    event_streams_per_process: int = 0
    # Webhooks: the seconds between a failed attempt and the next (Svix's schedule; the
    # first attempt goes at once, so 8 attempts in all), each attempt's timeout, how many
    # deliveries one process sends at once (its HTTP connection pool), and how long an
    # endpoint may fail every delivery before it is disabled. Private, loopback and
    # link-local addresses are refused unless webhook_allow_private (for local receivers).
    webhook_retry_schedule: str = "5,300,1800,7200,18000,36000,36000"
    webhook_timeout_seconds: float = 15.0
    webhook_concurrency: int = 64
    webhook_disable_after_seconds: int = 5 * 86400
    webhook_poll_seconds: float = 1.0
    webhook_allow_private: bool = False
    # Platform key-encryption keys of organizations' data keys, by version:
    # "VERSION:KEY,VERSION:KEY" (each key at least 32 bytes). A version not listed is
    # derived from secret_key. `treadle secrets rotate-key` re-wraps every data key under
    # the highest listed version above the current one (or the next, derived): list the
    # new key on every server first, keep the old one listed until the rotation is done.
    secrets_keys: str = ""
    # Model providers: the HTTP pool of provider calls (connections in all, and per host),
    # the output tokens an estimate assumes when a call gives no max_tokens, the prompt
    # characters a call may carry, the backoff of retries (base, and cap: a Retry-After
    # longer than the cap gives up instead of waiting), the circuit breaker (consecutive
    # failures that open it, seconds it stays open), how long revealed credentials,
    # configurations and budgets are kept in memory, and whether base URLs may name
    # private, loopback or link-local addresses (self-hosted models on a private network).
    provider_max_connections: int = 512
    provider_max_connections_per_host: int = 256
    provider_default_max_tokens: int = 1024
    provider_max_prompt_chars: int = 400_000
    provider_retry_base_seconds: float = 0.25
    provider_retry_max_seconds: float = 8.0
    provider_breaker_failures: int = 5
    provider_breaker_seconds: float = 30.0
    provider_credential_cache_seconds: float = 60.0
    provider_config_cache_seconds: float = 5.0
    provider_allow_private: bool = False
    # A call is answered once its usage records are committed, or after this long if
    # PostgreSQL is away (they are written later; see services/provider_usage).
    provider_usage_wait_seconds: float = 2.0
    # How long the records of concurrent calls gather before a batch is written (the
    # answer waits for its batch): fewer, larger statements for a millisecond or two.
    provider_usage_flush_seconds: float = 0.002
    # Assets: where the bytes live ("file": under data_dir/assets; "s3": a bucket of an
    # S3-compatible server at asset_s3_url, or AWS when empty), the largest upload (413
    # past it, refused while it streams), and the longest a signed download link may live.
    # S3 credentials: asset_s3_access_key/secret_key, else boto3's own chain (AWS_* vars).
    asset_store: str = "file"
    asset_max_bytes: int = 5 * 1024**3
    asset_link_max_ttl_seconds: int = 7 * 86400
    asset_s3_url: str = ""
    asset_s3_bucket: str = ""
    asset_s3_region: str = "us-east-1"
    asset_s3_prefix: str = ""
    asset_s3_access_key: str = ""
    asset_s3_secret_key: str = ""
    asset_s3_part_bytes: int = 8 * 1024 * 1024
    # Downloads past 8 MiB are sent from local copies (data_dir/asset-cache), kept
    # within this many bytes, least recently used first out (see services/asset_cache).
    asset_s3_cache_bytes: int = 10 * 1024**3

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Environment first, then explicit overrides (CLI flags that were given)."""
        env = dict(os.environ) if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, raw, f.type)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        if self.server not in ("granian", "robyn"):
            raise SettingsError(f"server must be 'granian' or 'robyn', not {self.server!r}")
        if not 0 < self.port < 65536:
            raise SettingsError(f"port must be between 1 and 65535, not {self.port}")
        if self.rate_limit_mode not in ("auto", "local", "redis"):
            raise SettingsError(
                f"rate_limit_mode must be auto, local or redis, not {self.rate_limit_mode!r}"
            )
        for name in (
            "rate_limit_user",
            "rate_limit_api_key",
            "rate_limit_anonymous",
            "rate_limit_max",
        ):
            parse_rate(getattr(self, name), name)
        for name in (
            "mail_keep_days",
            "platform_audit_keep_days",
            "workflow_max_nodes",
            "workflow_max_map_items",
            "workflow_max_input_bytes",
            "workflow_max_output_bytes",
            "telemetry_max_attributes",
            "telemetry_max_key_bytes",
            "telemetry_max_value_bytes",
            "telemetry_max_age_seconds",
            "telemetry_max_future_seconds",
            "webhook_concurrency",
            "webhook_disable_after_seconds",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in (
            "job_reap_seconds",
            "workflow_timer_seconds",
            "webhook_timeout_seconds",
            "webhook_poll_seconds",
        ):
            if not getattr(self, name) > 0:
                raise SettingsError(f"{name} must be more than 0, not {getattr(self, name)}")
        if not 0 <= self.event_wake_ms <= 1000:
            raise SettingsError(
                f"event_wake_ms must be between 0 and 1000 (milliseconds), not {self.event_wake_ms}"
            )
        try:
            _ = self.webhook_schedule
        except ValueError as exc:
            raise SettingsError(f"webhook_retry_schedule: {exc}") from None
        if self.password_hash_concurrency < 0 or self.password_hash_queue < 0:
            raise SettingsError("password_hash_concurrency and password_hash_queue must be >= 0")
        from treadle.web.client_address import parse_trusted

        try:
            parse_trusted(self.trusted_proxies)
        except ValueError as exc:
            raise SettingsError(f"trusted_proxies: {exc}") from None
        if not 0 <= self.db_pool_min <= self.db_pool_max or self.db_pool_max < 1:
            raise SettingsError(
                f"db_pool_min ({self.db_pool_min}) must be between 0 and db_pool_max"
                f" ({self.db_pool_max}), and db_pool_max at least 1"
            )
        if self.db_prepare_threshold < -1:
            raise SettingsError(
                "db_prepare_threshold must be -1 (never prepare) or at least 0,"
                f" not {self.db_prepare_threshold}"
            )
        from treadle.bus.redis import cluster_url

        try:
            cluster_url(self.redis_url)
        except ValueError as exc:
            raise SettingsError(f"TREADLE_REDIS_URL: {exc}") from None
        if "{" in self.redis_prefix or "}" in self.redis_prefix:
            # Redis Cluster hashes the first {...} of a key: the prefix would move every key.
            raise SettingsError(
                f"redis_prefix must not contain '{{' or '}}', not {self.redis_prefix!r}"
            )
        if self.asset_store not in ("file", "s3"):
            raise SettingsError(f"asset_store must be 'file' or 's3', not {self.asset_store!r}")
        if self.asset_max_bytes < 0:
            raise SettingsError(f"asset_max_bytes must be at least 0, not {self.asset_max_bytes}")
        if self.asset_link_max_ttl_seconds < 1:
            raise SettingsError("asset_link_max_ttl_seconds must be at least 1")
        if not 0 <= self.provider_usage_flush_seconds <= 1:
            raise SettingsError("provider_usage_flush_seconds must be between 0 and 1")
        if self.provider_usage_wait_seconds <= 0:
            raise SettingsError("provider_usage_wait_seconds must be more than 0")
        if self.asset_s3_cache_bytes < 0:
            raise SettingsError(
                f"asset_s3_cache_bytes must be at least 0, not {self.asset_s3_cache_bytes}"
            )
        if self.asset_store == "s3" and not self.asset_s3_bucket:
            raise SettingsError("asset_store=s3 needs asset_s3_bucket")
        from treadle.services.secrets import parse_keys

        parse_keys(self.secrets_keys)  # raises SettingsError, never quoting a key
        if self.workers < 1:
            raise SettingsError(f"workers must be at least 1, not {self.workers}")
        # Empty means "generate one into the data directory" (treadle serve does).
        problem = self.secret_key and secret_key_problem(self.secret_key)
        if problem:
            raise SettingsError(f"TREADLE_SECRET_KEY {problem}")

    def to_env(self) -> dict[str, str]:
        """The variables that make a child process see these same settings."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[PREFIX + f.name.upper()] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
        return out

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def connections_per_worker(self) -> int:
        """Granian's per-worker connection budget (``backpressure``; 0: 4,096)."""
        return self.backpressure or DEFAULT_CONNECTIONS_PER_WORKER

    @property
    def webhook_schedule(self) -> list[float]:
        """The seconds to wait after each failed attempt before the next one."""
        try:
            delays = [float(part) for part in self.webhook_retry_schedule.split(",")]
        except ValueError:
            delays = []
        if not delays or any(not 0 <= d <= 7 * 86400 for d in delays):
            raise ValueError(
                "give comma-separated seconds between attempts, each from 0 to 604800,"
                f" like 5,300,1800; not {self.webhook_retry_schedule!r}"
            )
        return delays

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class SettingsError(ValueError):
    pass


def secret_key_problem(key: str) -> str | None:
    """Why ``key`` cannot sign tokens and key hashes, or None when it can."""
    if key.strip() in PLACEHOLDER_SECRET_KEYS:
        return "is the placeholder from docker/compose.yaml; " + NEW_KEY_HINT
    if len(key.strip().encode()) < MIN_SECRET_KEY_BYTES:
        return f"is shorter than {MIN_SECRET_KEY_BYTES} bytes; " + NEW_KEY_HINT
    return None


NEW_KEY_HINT = "make one with: python -c 'import secrets; print(secrets.token_hex(32))'"


def parse_rate(value: str, name: str = "rate") -> tuple[int, int]:
    """``"LIMIT/SECONDS"`` as (limit, seconds)."""
    limit, _, period = value.partition("/")
    if not (limit.isdigit() and period.isdigit() and int(limit) > 0 and int(period) > 0):
        raise SettingsError(f"{name} must look like 600/60 (requests/seconds), not {value!r}")
    return int(limit), int(period)


def _parse(name: str, raw: str, kind: Any) -> Any:
    kind = kind if isinstance(kind, str) else kind.__name__
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name.upper()}={raw!r} is not a valid {kind}") from None
    return raw
