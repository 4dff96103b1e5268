"""A real S3-compatible server for the tests: moto's, in a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.servers import free_port

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@contextmanager
def moto_server(log_dir: Path) -> Iterator[str]:
    """The URL of a started moto server, stopped when the block ends."""
    port = free_port()
    with (log_dir / "moto.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    proc.kill()
                    raise RuntimeError("the S3 server did not start") from None
                time.sleep(0.1)
        try:
            yield url
        finally:
            proc.terminate()
            proc.wait(10)


def bucket(url: str, name: str) -> Any:
    """A boto3 client of the server at ``url``, with the bucket ``name`` made."""
    import boto3

    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", **CREDENTIALS)
    client.create_bucket(Bucket=name)
    return client


def store_env(url: str, name: str, prefix: str = "") -> dict[str, str]:
    """The settings of a treadle server keeping its assets in that bucket."""
    return {
        "TREADLE_ASSET_STORE": "s3",
        "TREADLE_ASSET_S3_URL": url,
        "TREADLE_ASSET_S3_BUCKET": name,
        "TREADLE_ASSET_S3_PREFIX": prefix,
        "TREADLE_ASSET_S3_ACCESS_KEY": "testing",
        "TREADLE_ASSET_S3_SECRET_KEY": "testing",
    }
