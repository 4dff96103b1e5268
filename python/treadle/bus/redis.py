"""The Redis client (one server, or a Redis Cluster), with every key under the configured
prefix.

A cluster is named by ``redis+cluster://[user:password@]host:port[,host:port...]/``
(``rediss+cluster://`` for TLS): the scheme says what kind of Redis it is, as ``rediss``
says TLS, and the authority holds several seed nodes, so that startup does not hang on one
node being down (a ``?cluster=true`` flag on a ``redis://`` URL would leave room for one).

On a cluster, every key that one Lua script or one multi-key command touches carries the
same hash tag (``tagged``), so they live in one slot. Single-key commands need none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

Client = Redis | RedisCluster

CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
MAX_SEED_NODES = 64
DEFAULT_PORT = 6379
# Connections a cluster client may open to each node. redis-py's default (100) turns the
# 101st concurrent command into an error that looks like Redis being down (shared rate
# limits would fall back to local); this is as many requests as a worker holds at once by
# default (TREADLE_BACKPRESSURE), the plain client's pool having no cap at all.
CLUSTER_MAX_CONNECTIONS = 4096
# Tries again after a connection error (a cluster client also relearns the topology each
# time): redis-py's default of 10 with backoff up to 1 s holds a request about 5 s while a
# master is down; these give up within about 0.5 s (callers then fall back, or answer 503).
CLUSTER_RETRIES = 3
# What "Redis is not answering" looks like: a cluster client with no reachable node (or a
# slot no node serves) raises RedisClusterException, which is not a RedisError.
UNAVAILABLE: tuple[type[BaseException], ...] = (RedisError, RedisClusterException, OSError)


@dataclass(frozen=True, slots=True)
class ClusterUrl:
    nodes: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None
    ssl: bool


def cluster_url(url: str) -> ClusterUrl | None:
    """The cluster a ``redis+cluster://`` URL names; None for any other URL. Raises
    ValueError saying what to fix."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in CLUSTER_SCHEMES:
        return None
    rest, has_query, _ = rest.partition("?")
    authority, _, path = rest.partition("/")
    if has_query:
        raise ValueError("a redis+cluster:// URL takes no query options")
    if path not in ("", "0"):
        raise ValueError(f"a Redis Cluster has only database 0, not {path!r}")
    userinfo, _, hosts = authority.rpartition("@")
    username = password = None
    if userinfo:
        user, has_password, secret = userinfo.partition(":")
        username, password = unquote(user) or None, unquote(secret) if has_password else None
    nodes = []
    for item in hosts.split(","):
        parts = urlsplit(f"//{item}")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError:
            port = 0
        if not parts.hostname or not 0 < port < 65536 or "@" in item:
            raise ValueError(
                f"{item!r} is not a host:port; write redis+cluster://host:port,host:port/"
            )
        nodes.append((parts.hostname, port))
    if len(nodes) > MAX_SEED_NODES:
        raise ValueError(f"a redis+cluster:// URL names at most {MAX_SEED_NODES} seed nodes")
    return ClusterUrl(tuple(nodes), username, password, CLUSTER_SCHEMES[scheme.lower()])


def connect(url: str, socket_timeout: float = 2.0) -> Client:
    cluster = cluster_url(url)
    if cluster is None:
        return Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=1.0,
            health_check_interval=15,
            retry_on_timeout=False,
        )
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in cluster.nodes],
        username=cluster.username,
        password=cluster.password,
        ssl=cluster.ssl,
        socket_timeout=socket_timeout,
        socket_connect_timeout=1.0,
        health_check_interval=15,
        max_connections=CLUSTER_MAX_CONNECTIONS,
        retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.2), CLUSTER_RETRIES),
    )


def check_reachable(url: str, timeout: float) -> None:
    """Raise unless the Redis (every master of a cluster) answers; refuses a ``redis://``
    URL that points at a cluster node, which would fail on most keys later."""
    cluster = cluster_url(url)
    if cluster is not None:
        nodes = [redis.cluster.ClusterNode(h, p) for h, p in cluster.nodes]  # type: ignore[no-untyped-call]
        client: Any = redis.RedisCluster(
            startup_nodes=nodes,
            username=cluster.username,
            password=cluster.password,
            ssl=cluster.ssl,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
    else:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        if cluster is not None:
            client.ping(target_nodes=redis.RedisCluster.PRIMARIES)
        else:
            client.ping()
        if cluster is None and client.info("cluster").get("cluster_enabled") == 1:
            raise RedisError(
                "it is a Redis Cluster node: name the cluster with"
                " redis+cluster://host:port[,host:port...]/"
            )
    finally:
        client.close()


async def ping(client: Client) -> bool:
    """Whether the Redis answers: on a cluster, every master (redis-py's own PING asks one
    node, which says nothing of the slots the others serve)."""
    if isinstance(client, RedisCluster):
        return bool(await client.ping(target_nodes=RedisCluster.PRIMARIES))
    return bool(await client.ping())


async def pubsub(client: Client) -> PubSub:
    """A subscriber. On a cluster, redis-py subscribes on the node that serves the channel's
    slot (PUBLISH on any node reaches every node's subscribers: classic pub/sub is
    broadcast), which it can only look up once the client knows the slots."""
    if isinstance(client, RedisCluster):
        await client.initialize()
    return client.pubsub(ignore_subscribe_messages=True)


def tagged(prefix: str, tag: str) -> str:
    """``prefix`` and a hash tag: every key that starts with it lives in one cluster slot."""
    return f"{prefix}{{{tag}}}"


async def run_script(
    client: Client, script: AsyncScript, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]
) -> list[Any]:
    """The answers of one call of ``script`` per (keys, args), in one pipeline without a
    transaction. redis-py's cluster pipelines refuse script objects (they cannot load a
    script first), so each call goes as a plain EVALSHA; should a node not know the script,
    it is loaded everywhere and the whole pipeline sent again: ``script`` must be safe to
    run twice with the same arguments."""
    for attempt in range(2):
        pipe = client.pipeline(transaction=False)
        for keys, args in calls:
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            return list(await pipe.execute())
        except NoScriptError:
            if attempt:
                raise
            await client.script_load(script.script)
    raise AssertionError("unreachable")
