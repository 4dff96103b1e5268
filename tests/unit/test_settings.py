from __future__ import annotations

import pytest

from treadle.settings import Settings, SettingsError


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert (settings.port, settings.server, settings.workers) == (3001, "granian", 1)
    assert settings.data_dir == "./.treadle"


def test_environment_then_flags() -> None:
    env = {"TREADLE_PORT": "4000", "TREADLE_WORKERS": "3", "TREADLE_ACCESS_LOG": "false"}
    settings = Settings.from_env(env, port=5000, workers=None)
    assert settings.port == 5000  # a given flag wins
    assert settings.workers == 3  # an absent flag leaves the environment's value
    assert settings.access_log is False


def test_round_trip_through_environment() -> None:
    settings = Settings.from_env({}, port=4321, server="robyn", access_log=False)
    assert Settings.from_env(settings.to_env()) == settings


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"TREADLE_PORT": "http"}, "TREADLE_PORT='http' is not a valid int"),
        ({"TREADLE_PORT": "70000"}, "port must be between"),
        ({"TREADLE_SERVER": "uvicorn"}, "server must be 'granian' or 'robyn'"),
        ({"TREADLE_WORKERS": "0"}, "workers must be at least 1"),
        ({"TREADLE_WORKFLOW_MAX_NODES": "0"}, "workflow_max_nodes must be at least 1"),
        ({"TREADLE_WORKFLOW_TIMER_SECONDS": "0"}, "workflow_timer_seconds must be more than 0"),
        ({"TREADLE_ACCESS_LOG": "maybe"}, "not a valid bool"),
        ({"TREADLE_DB_POOL_MAX": "0"}, "db_pool_max at least 1"),
        ({"TREADLE_DB_POOL_MIN": "11"}, "must be between 0 and db_pool_max"),
        ({"TREADLE_DB_PREPARE_THRESHOLD": "-2"}, "db_prepare_threshold must be -1"),
        ({"TREADLE_DB_PREPARE_THRESHOLD": "soon"}, "is not a valid int"),
        ({"TREADLE_WEBHOOK_RETRY_SCHEDULE": "5,soon"}, "webhook_retry_schedule: give"),
        ({"TREADLE_WEBHOOK_CONCURRENCY": "0"}, "webhook_concurrency must be at least 1"),
        ({"TREADLE_ASSET_STORE": "ftp"}, "asset_store must be 'file' or 's3'"),
        ({"TREADLE_ASSET_STORE": "s3"}, "asset_store=s3 needs asset_s3_bucket"),
        ({"TREADLE_ASSET_LINK_MAX_TTL_SECONDS": "0"}, "asset_link_max_ttl_seconds must be"),
        ({"TREADLE_ASSET_S3_CACHE_BYTES": "-1"}, "asset_s3_cache_bytes must be"),
        ({"TREADLE_PROVIDER_USAGE_WAIT_SECONDS": "0"}, "provider_usage_wait_seconds must be"),
        ({"TREADLE_PROVIDER_USAGE_FLUSH_SECONDS": "2"}, "provider_usage_flush_seconds must be"),
    ],
)
def test_bad_values_say_what_to_fix(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment.replace("(", r"\(")):
        Settings.from_env(env)
