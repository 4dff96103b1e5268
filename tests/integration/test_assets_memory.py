"""A 1 GiB asset goes up and comes down without the server holding it in memory: the
resident memory of the server's whole process tree grows by less than 64 MiB in either
direction. Neither does this test hold it: the upload is generated as it is sent, the
download hashed as it arrives. The same holds for a download from the S3 store taken by a
client slower than S3 (256 MiB there: the moto server keeps its objects in memory)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.api import bearer, create_org, envelope, signup
from tests.support.s3 import bucket, moto_server, store_env
from tests.support.servers import Server, free_port, start_server
from tests.support.storage import own_storage
from treadle._core import ContentDigest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

GIB = 1 << 30
BLOCK = 1 << 20
MAX_GROWTH = 64 << 20


@pytest.fixture(scope="module")
def big_server(database_url: str, server_env: dict, tmp_path_factory) -> Iterator[Server]:
    tmp: Path = tmp_path_factory.mktemp("assets_memory")
    with own_storage(database_url, server_env, "assets_mem") as env:
        env = {**env, "TREADLE_PORT": str(free_port()), "TREADLE_DATA_DIR": str(tmp / "data")}
        server = start_server("granian", env, tmp / "server.log")
        yield server
        server.stop()


@pytest.fixture(scope="module")
def s3_server(database_url: str, server_env: dict, tmp_path_factory) -> Iterator[Server]:
    tmp: Path = tmp_path_factory.mktemp("assets_memory_s3")
    with (
        moto_server(tmp) as url,
        own_storage(database_url, server_env, "assets_mem_s3") as env,
    ):
        bucket(url, "big").close()
        env = {
            **env,
            **store_env(url, "big"),
            "TREADLE_PORT": str(free_port()),
            "TREADLE_DATA_DIR": str(tmp / "data"),
        }
        server = start_server("granian", env, tmp / "server.log")
        yield server
        server.stop()


def tree_rss(pid: int) -> int:
    """Resident bytes of the process and all its descendants (Granian's workers)."""
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total


class Sampler:
    """The largest tree RSS seen while the block runs, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss(self.pid))


def generated(total: int, digest: ContentDigest) -> Iterator[bytes]:
    """``total`` bytes, made block by block (each block differs), hashed as they go."""
    base = bytes(range(256)) * (BLOCK // 256)
    sent = 0
    while sent < total:
        block = sent.to_bytes(8, "little") + base[8:]
        block = block[: total - sent]
        digest.update(block)
        sent += len(block)
        yield block


def download(
    client: httpx.Client, pid: int, asset: dict, auth: dict[str, str], pause: float = 0.0
) -> Sampler:
    """Download ``asset`` a block at a time (``pause`` seconds after each), checking its
    size and digest as it arrives; the server's RSS sampled meanwhile."""
    got = ContentDigest()
    with (
        Sampler(pid) as sampled,
        client.stream("GET", f"/v1/assets/{asset['id']}/content", headers=auth) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-length"] == str(asset["size"])
        for chunk in response.iter_raw(BLOCK):
            got.update(chunk)
            time.sleep(pause)
    assert (got.size, got.finish()) == (asset["size"], asset["digest"])
    return sampled


def test_a_gib_upload_and_download_grow_the_server_by_less_than_64_mib(
    big_server: Server,
) -> None:
    pid = big_server.proc.pid
    with httpx.Client(base_url=big_server.url, timeout=120) as client:
        owner = signup(client)
        org = create_org(client, owner)
        params = {"organization_id": org["id"], "name": "warm-up"}
        # Warm up both paths, so that what is loaded once per process is in the baseline.
        warm = client.post(
            "/v1/assets",
            params=params,
            content=generated(8 * BLOCK, ContentDigest()),
            headers=bearer(owner),
        )
        assert warm.status_code == 201, warm.text
        warm_id = envelope(warm)["data"]["id"]
        assert len(client.get(f"/v1/assets/{warm_id}/content", headers=bearer(owner)).content)
        time.sleep(0.5)
        baseline = tree_rss(pid)

        sent = ContentDigest()
        started = time.perf_counter()
        with Sampler(pid) as up:
            made = client.post(
                "/v1/assets",
                params={**params, "name": "big.bin"},
                content=generated(GIB, sent),
                headers=bearer(owner),
            )
        up_seconds = time.perf_counter() - started
        assert made.status_code == 201, made.text
        asset = envelope(made)["data"]
        assert (asset["size"], asset["digest"]) == (GIB, sent.finish())

        started = time.perf_counter()
        down = download(client, pid, asset, bearer(owner))
        down_seconds = time.perf_counter() - started

    up_growth, down_growth = up.peak - baseline, down.peak - baseline
    print(
        f"\nbaseline RSS {baseline / 2**20:.1f} MiB;"
        f" upload: peak +{up_growth / 2**20:.1f} MiB, {GIB / 2**20 / up_seconds:.0f} MB/s;"
        f" download: peak +{down_growth / 2**20:.1f} MiB, {GIB / 2**20 / down_seconds:.0f} MB/s"
    )
    assert up_growth < MAX_GROWTH, up_growth
    assert down_growth < MAX_GROWTH, down_growth


def test_a_slow_client_downloading_from_s3_does_not_grow_the_server_by_64_mib(
    s3_server: Server,
) -> None:
    size = 256 * BLOCK
    pid = s3_server.proc.pid
    with httpx.Client(base_url=s3_server.url, timeout=120) as client:
        owner = signup(client)
        org = create_org(client, owner)
        params = {"organization_id": org["id"], "name": "big.bin"}
        sent = ContentDigest()
        made = client.post(
            "/v1/assets", params=params, content=generated(size, sent), headers=bearer(owner)
        )
        assert made.status_code == 201, made.text
        asset = envelope(made)["data"]
        time.sleep(0.5)
        baseline = tree_rss(pid)

        # About 100 MB/s: slower than the server reads S3.
        down = download(client, pid, asset, bearer(owner), pause=0.01)

    growth = down.peak - baseline
    print(f"\nS3 download to a slow client: peak +{growth / 2**20:.1f} MiB")
    assert growth < MAX_GROWTH, growth
