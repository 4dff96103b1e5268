"""Asset upload and download MB/s, next to what the same bytes cost without treadle.

One treadle server (one Granian worker). Each round moves one file of ``--size-mib``
(random bytes, written once to the bench's temporary directory):

- **upload**: ``POST /v1/assets`` streaming the file from disk (1 MiB chunks, chunked
  transfer); the server hashes it, writes it, fsyncs it and moves it into place.
- **download**: ``GET /v1/assets/{id}/content``, written to a file on the same disk.
- baselines, on the same disk: **copy** (``shutil.copyfile``), and **copy+fsync**
  (what an upload also pays for durability). With ``--store s3``: direct boto3
  ``upload_file`` / ``download_file`` to and from the same local S3 server (moto's,
  started by the bench), with treadle's part size.

Each figure is the median of ``--rounds``; every upload is a new content (the file is
rewritten each round) so that none is deduplicated away.

    .venv/bin/python bench/assets_throughput.py [--size-mib 1024] [--rounds 3] [--store file|s3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import runner
import servers

CHUNK = 1 << 20
PART = 8 << 20
BUCKET = "bench-assets"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--store", choices=("file", "s3"), default="file")
    p.add_argument(
        "--client",
        choices=("curl", "httpx"),
        default="curl" if shutil.which("curl") else "httpx",
        help="what sends and receives: curl (C, so the server is what is measured) or httpx",
    )
    return runner.add_common_args(p)


@contextlib.contextmanager
def moto(log_dir: Path) -> Iterator[str]:
    port = servers.free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "moto.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit("the S3 server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb", buffering=0) as f:
        while chunk := f.read(CHUNK):
            yield chunk


def _rate(size: int, seconds: float) -> float:
    return size / 1e6 / seconds


def _timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _copy_fsync(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    fd = os.open(dst, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _curl(*args: str) -> str:
    done = subprocess.run(
        ["curl", "-sS", "-w", "%{http_code}", *args], capture_output=True, text=True, check=True
    )
    return done.stdout[-3:]


def _transfer_curl(
    app: servers.Target,
    auth: dict[str, str],
    org_id: str,
    src: Path,
    dst: Path,
    run: dict[str, Any],
) -> str:
    header = f"Authorization: {auth['Authorization']}"
    answer = dst.with_suffix(".json")
    url = f"{app.url}/v1/assets?organization_id={org_id}&name=bench.bin"
    started = time.perf_counter()
    status = _curl(
        "-X",
        "POST",
        "-T",
        str(src),
        "-H",
        header,
        "-H",
        "content-type: application/octet-stream",
        "-o",
        str(answer),
        url,
    )
    run["upload_s"] = time.perf_counter() - started
    assert status == "201", answer.read_text()
    asset_id = json.loads(answer.read_text())["data"]["id"]
    started = time.perf_counter()
    status = _curl("-H", header, "-o", str(dst), f"{app.url}/v1/assets/{asset_id}/content")
    run["download_s"] = time.perf_counter() - started
    assert status == "200"
    return str(asset_id)


def _transfer_httpx(
    client: httpx.Client,
    auth: dict[str, str],
    org_id: str,
    src: Path,
    dst: Path,
    size: int,
    run: dict[str, Any],
) -> None:
    params = {"organization_id": org_id, "name": "bench.bin"}
    started = time.perf_counter()
    made = client.post("/v1/assets", params=params, content=_chunks(src), headers=auth)
    run["upload_s"] = time.perf_counter() - started
    assert made.status_code == 201, made.text
    asset = made.json()["data"]
    assert asset["size"] == size
    started = time.perf_counter()
    with (
        client.stream("GET", f"/v1/assets/{asset['id']}/content", headers=auth) as got,
        dst.open("wb", buffering=0) as out,
    ):
        assert got.status_code == 200
        for chunk in got.iter_raw(CHUNK):
            out.write(chunk)
    run["download_s"] = time.perf_counter() - started
    assert dst.stat().st_size == size
    assert client.delete(f"/v1/assets/{asset['id']}", headers=auth).status_code == 200


def one(
    app: servers.Target, token: str, org_id: str, work: Path, size: int, s3: Any, client_kind: str
) -> dict[str, Any]:
    src, dst = work / "source.bin", work / "copy.bin"
    with src.open("wb") as f:  # new content each round
        for _ in range(size // CHUNK):
            f.write(os.urandom(CHUNK))
    os.sync()
    auth = {"Authorization": f"Bearer {token}"}
    run: dict[str, Any] = {"size_bytes": size}
    with httpx.Client(base_url=app.url, timeout=600) as client:
        if client_kind == "curl":
            asset_id = _transfer_curl(app, auth, org_id, src, dst, run)
            assert dst.stat().st_size == size
            assert client.delete(f"/v1/assets/{asset_id}", headers=auth).status_code == 200
        else:
            _transfer_httpx(client, auth, org_id, src, dst, size, run)
    dst.unlink()
    run["copy_s"] = _timed(lambda: shutil.copyfile(src, dst))
    dst.unlink()
    run["copy_fsync_s"] = _timed(lambda: _copy_fsync(src, dst))
    dst.unlink()
    if s3 is not None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART)
        run["s3_put_s"] = _timed(lambda: s3.upload_file(str(src), BUCKET, "direct", Config=config))
        run["s3_get_s"] = _timed(
            lambda: s3.download_file(BUCKET, "direct", str(dst), Config=config)
        )
        s3.delete_object(Bucket=BUCKET, Key="direct")
        dst.unlink()
    for key in [k for k in run if k.endswith("_s")]:
        run[key.removesuffix("_s") + "_mb_s"] = round(_rate(size, run[key]), 1)
    return run


def _line(run: dict[str, Any]) -> str:
    return ", ".join(f"{k.removesuffix('_mb_s')} {v} MB/s" for k, v in run.items() if "mb_s" in k)


def _table(runs: list[dict[str, Any]], store: str) -> str:
    names = [k for k in runs[0] if k.endswith("_mb_s")]
    rows = ["| path | MB/s (median) |", "| --- | --- |"]
    for name in names:
        rows.append(
            f"| {name.removesuffix('_mb_s')} | {statistics.median(r[name] for r in runs):.0f} |"
        )
    return f"store: {store}, {runs[0]['size_bytes'] // 2**20} MiB\n" + "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    size = args.size_mib * CHUNK
    with contextlib.ExitStack() as stack:
        env: dict[str, str] = {}
        s3 = None
        if args.store == "s3":
            import boto3

            url = stack.enter_context(moto(Path(os.environ.get("TMPDIR", "/tmp")) / "bench-moto"))
            s3 = boto3.client(
                "s3",
                endpoint_url=url,
                region_name="us-east-1",
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
            )
            s3.create_bucket(Bucket=BUCKET)
            env = {
                "TREADLE_ASSET_STORE": "s3",
                "TREADLE_ASSET_S3_URL": url,
                "TREADLE_ASSET_S3_BUCKET": BUCKET,
                "TREADLE_ASSET_S3_ACCESS_KEY": "bench",
                "TREADLE_ASSET_S3_SECRET_KEY": "bench",
                "TREADLE_ASSET_S3_PART_BYTES": str(PART),
                "TREADLE_ASSET_S3_PREFIX": "treadle/",
            }
        bench = stack.enter_context(runner.unlimited_treadle("assets_throughput", args, env))
        work = Path(bench.app.log_dir) / "assets-bench"
        work.mkdir(parents=True, exist_ok=True)
        with httpx.Client(base_url=bench.app.url, timeout=30) as client:
            made = client.post(
                "/v1/organizations",
                json={"name": "Bench"},
                headers={"Authorization": f"Bearer {bench.token}"},
            )
            assert made.status_code == 201, made.text
            org_id = made.json()["data"]["id"]
        for r in range(1, args.rounds + 1):
            run = one(bench.app, bench.token, org_id, work, size, s3, args.client)
            run["round"] = r
            bench.report["runs"].append(run)
            print(f"  round {r}/{args.rounds}: {_line(run)}", flush=True)
        bench.report["table"] = _table(bench.report["runs"], args.store)
        print("\n" + bench.report["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
