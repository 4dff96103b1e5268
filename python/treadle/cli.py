"""The ``treadle`` command: serve, migrate, version, admin, secrets."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg.rows import dict_row

from treadle import __version__, logs
from treadle.bus.invalidation import Invalidator
from treadle.bus.redis import UNAVAILABLE, cluster_url, connect
from treadle.bus.redis import check_reachable as check_redis
from treadle.embedded import EmbeddedPostgres, EmbeddedValkey
from treadle.settings import Settings, SettingsError, secret_key_problem
from treadle.store import users as user_store
from treadle.store.migrate import migrate


class StartupError(Exception):
    """A one-line reason why treadle cannot start."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(
            server=getattr(args, "server", None),
            host=getattr(args, "host", None),
            port=getattr(args, "port", None),
            workers=getattr(args, "workers", None),
            data_dir=getattr(args, "data_dir", None),
        )
        return int(args.run(settings, args))
    except (StartupError, SettingsError) as exc:
        print(f"treadle: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="treadle", description="Every flag can also be set as TREADLE_<FLAG>."
    )
    commands = parser.add_subparsers(required=True, metavar="command")

    serve = commands.add_parser("serve", help="run the API server")
    serve.add_argument("--server", choices=["granian", "robyn"], help="TREADLE_SERVER")
    serve.add_argument("--host", help="TREADLE_HOST (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TREADLE_PORT (default 3001)")
    serve.add_argument("--workers", type=int, help="TREADLE_WORKERS (default 1)")
    serve.add_argument("--data-dir", help="TREADLE_DATA_DIR (default ./.treadle)")
    serve.set_defaults(run=_serve)

    mig = commands.add_parser("migrate", help="apply database migrations")
    mig.add_argument("--data-dir", help="TREADLE_DATA_DIR (default ./.treadle)")
    mig.set_defaults(run=_migrate)

    ver = commands.add_parser("version", help="print the version")
    ver.set_defaults(run=lambda settings, args: print(__version__) or 0)

    admin = commands.add_parser("admin", help="grant or revoke platform admin")
    admin.add_argument("action", choices=["grant", "revoke"])
    admin.add_argument("email")
    admin.add_argument("--data-dir", help="TREADLE_DATA_DIR (default ./.treadle)")
    admin.set_defaults(run=_admin)

    secrets_cmd = commands.add_parser("secrets", help="manage the keys of stored credentials")
    secrets_cmd.add_argument(
        "action", choices=["rotate-key"], help="re-wrap every data key under a new key version"
    )
    secrets_cmd.add_argument("--batch", type=int, default=100, help="data keys per transaction")
    secrets_cmd.add_argument("--data-dir", help="TREADLE_DATA_DIR (default ./.treadle)")
    secrets_cmd.set_defaults(run=_secrets)
    return parser


@contextlib.contextmanager
def storage(settings: Settings) -> Iterator[Settings]:
    """Settings whose URLs point at reachable, migrated servers; embedded ones if unset."""
    started: list[EmbeddedPostgres | EmbeddedValkey] = []
    try:
        changes = {}
        if not settings.database_url:
            pg = EmbeddedPostgres(settings.data_path)
            started.append(pg)
            changes["database_url"] = pg.start()
        if not settings.redis_url:
            valkey = EmbeddedValkey(settings.data_path)
            started.append(valkey)
            changes["redis_url"] = valkey.start()
        settings = settings.replace(**changes)
        _check_reachable(settings)
        migrate(settings.database_url)
        yield settings
    finally:
        for server in reversed(started):
            server.stop()


def _check_reachable(settings: Settings) -> None:
    try:
        psycopg.connect(settings.database_url, connect_timeout=3).close()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise StartupError(
            f"cannot reach PostgreSQL at {_where(settings.database_url)}: {reason}"
        ) from None
    try:
        check_redis(settings.redis_url, 3.0)
    except UNAVAILABLE as exc:
        raise StartupError(f"cannot reach Redis at {_where(settings.redis_url)}: {exc}") from None


def _where(url: str) -> str:
    """host:port of a URL (of each seed node of a cluster), without credentials."""
    cluster = cluster_url(url)
    if cluster is not None:
        return ",".join(f"{host}:{port}" for host, port in cluster.nodes)
    parts = urlsplit(url)
    host = parts.hostname or "local socket"
    return f"{host}:{parts.port}" if parts.port else host


def _secret(settings: Settings) -> Settings:
    if settings.secret_key:
        return settings
    path = settings.data_path / "secret.key"
    if not path.exists():
        _write_new_key(path)
    key = path.read_text().strip()
    problem = secret_key_problem(key)
    if problem:
        # Never sign with it: an empty or short file is what a crash mid-write leaves.
        raise StartupError(
            f"the secret key in {path} {problem.split(';')[0]}; delete the file to have"
            " a new one generated (sessions and tokens signed with the old key end),"
            " or set TREADLE_SECRET_KEY"
        )
    return settings.replace(secret_key=key)


def _write_new_key(path: Path) -> None:
    """A fresh key at ``path``, all or nothing: written and synced under a temporary name,
    then linked into place, so a crash leaves no file or a whole one, and of two servers
    starting at once the first to link wins and both read its key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.unlink(missing_ok=True)  # a leftover of a crash, whatever its mode
    try:
        with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            f.write(secrets.token_hex(32).encode())
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    finally:
        temp.unlink(missing_ok=True)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    logs.setup(settings.log_level)
    with storage(_secret(settings)) as ready:
        if ready.server == "robyn":
            from treadle.web.robyn import run_robyn

            return run_robyn(ready)
        return _run_granian(ready)


def _raise_fd_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _run_granian(settings: Settings) -> int:
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings
    from granian.server import Server

    # Workers are separate processes: they read their settings from the environment.
    os.environ.update(settings.to_env())
    # Every connection is a descriptor: let the workers (who inherit this) hold as many
    # as the hard limit allows, not the usual soft 1,024.
    _raise_fd_limit()
    server = Server(
        "treadle.web.granian:app",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.RSGI,
        workers=settings.workers,
        log_access=False,
        workers_kill_timeout=max(1, int(settings.shutdown_timeout)),
        backlog=settings.backlog,
        # Granian's backpressure is a per-worker semaphore taken for each accepted
        # connection (idle ones included), not per request: with backlog / workers it is
        # 512, so ~1,024 silent sockets on two workers stopped all accepting.
        backpressure=settings.connections_per_worker,
        # hyper's header read timeout also bounds a keep-alive connection waiting for its
        # next request; it does not start before a new connection's first byte, so silent
        # ones are bounded only by the connection slots above.
        http1_settings=HTTP1Settings(
            header_read_timeout=max(1, int(settings.http_header_timeout_seconds * 1000)),
            keep_alive=settings.http_keepalive,
        ),
        # A worker that dies (SIGKILL, segfault, out of memory) is replaced; the others
        # keep serving. Granian still exits on a crash loop (same worker twice in 5.5 s).
        respawn_failed_workers=True,
    )
    try:
        server.serve()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    with storage(settings) as ready:
        print(f"migrated {_where(ready.database_url)}")
    return 0


def _admin(settings: Settings, args: argparse.Namespace) -> int:
    email = args.email.strip().lower()
    with storage(settings) as ready:
        row = asyncio.run(_set_admin(ready, email, args.action == "grant"))
    if row is None:
        raise StartupError(f"no account with email {email}")
    print(f"{args.action}ed platform admin for {email}")
    return 0


async def _set_admin(settings: Settings, email: str, value: bool) -> dict[str, object] | None:
    async with await psycopg.AsyncConnection.connect(
        settings.database_url, row_factory=dict_row, autocommit=True
    ) as conn:
        row = await user_store.set_platform_admin(conn, email, value)
    if row is not None:
        # Running servers cache accounts: tell them this one changed.
        client = connect(settings.redis_url)
        await Invalidator(client, settings.redis_prefix).publish("user", row["id"])
        await client.aclose()
    return row


def _secrets(settings: Settings, args: argparse.Namespace) -> int:
    from treadle.services.secrets import RotationError, rotate_key

    if args.batch < 1:
        raise StartupError(f"--batch must be at least 1, not {args.batch}")
    with storage(_secret(settings)) as ready:
        try:
            done = asyncio.run(
                rotate_key(ready, args.batch, lambda n: print(f"re-wrapped {n}", flush=True))
            )
        except RotationError as exc:
            raise StartupError(str(exc)) from None
    verb = "finished the rotation to" if done.resumed else "rotated to"
    print(f"{verb} key version {done.version}: {done.rewrapped} data keys re-wrapped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
