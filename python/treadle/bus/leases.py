"""How many event streams each principal and organization holds, across processes.

Each open stream holds a lease: a member of two Redis sorted sets (its principal's and its
organization's) scored with the time it lapses. The process holding the stream renews
its leases every ``RENEW_SECONDS``; a process that dies stops renewing, so its streams
stop counting ``LEASE_SECONDS`` later. Counting in Redis, rather than dividing the caps
by the number of processes, keeps the caps exact however the load balancer spreads a
principal's connections. Should Redis be away, the caps hold per process instead.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from dataclasses import dataclass

from treadle.background import Background
from treadle.bus.redis import UNAVAILABLE, Client, tagged

log = logging.getLogger("treadle.events")

LEASE_SECONDS = 30
RENEW_SECONDS = 10.0
# A lease whose stream never started (the client left before the first byte) is given
# back after this long.
UNSTARTED_SECONDS = 10.0

# KEYS: principal set, organization set; ARGV: member, principal cap, org cap, ttl.
# Answers 0 when taken, 1 when the principal is at its cap, 2 the organization.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 1 end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return 2 end
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], now + ttl, ARGV[1])
  redis.call('EXPIRE', KEYS[i], ttl * 2)
end
return 0
"""

# KEYS: principal and organization sets, in pairs; ARGV: ttl, then one member per pair.
_RENEW = """
local t = redis.call('TIME')
local until_ = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
for i = 1, #KEYS do
  local member = ARGV[math.floor((i + 1) / 2) + 1]
  redis.call('ZADD', KEYS[i], until_, member)
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[1]) * 2)
end
return #KEYS
"""


@dataclass(eq=False)
class Lease:
    """One open stream's place in its principal's and organization's counts."""

    member: str
    principal: str
    organization: str
    started: bool = False
    taken_at: float = 0.0


class Leases(Background):
    """This process's leases, renewed in one Redis call per ``RENEW_SECONDS``."""

    def __init__(
        self, redis: Client, prefix: str, per_principal: int, per_org: int, per_process: int
    ) -> None:
        self.redis = redis
        # Streams hold connection slots for as long as they are open: this process lets them
        # take at most this many, so that API requests always find slots of their own.
        self.per_process = per_process
        # Both scripts touch the sets of many principals and organizations: one hash tag
        # puts them all in one Redis Cluster slot. (Before the tag they were
        # ``{prefix}streams:``; leases of processes not yet upgraded lapse in LEASE_SECONDS.)
        self.prefix = f"{tagged(prefix, 'streams')}:"
        self.per_principal = per_principal
        self.per_org = per_org
        self.acquire_script = redis.register_script(_ACQUIRE)
        self.renew_script = redis.register_script(_RENEW)
        self._held: set[Lease] = set()
        self._releasing: set[asyncio.Task[None]] = set()

    def _keys(self, lease: Lease) -> list[str]:
        return [f"{self.prefix}p:{lease.principal}", f"{self.prefix}o:{lease.organization}"]

    async def acquire(self, principal: str, organization: str) -> Lease | str:
        """A lease, or which cap is reached (``principal``, ``organization``, ``process``)."""
        if len(self._held) >= self.per_process:
            return "process"
        lease = Lease(uuid.uuid4().hex, principal, organization)
        lease.taken_at = asyncio.get_running_loop().time()
        try:
            refused = await self.acquire_script(
                keys=self._keys(lease),
                args=[lease.member, self.per_principal, self.per_org, LEASE_SECONDS],
            )
        except UNAVAILABLE:
            refused = self._local_refusal(lease)
        if refused:
            return "principal" if int(refused) == 1 else "organization"
        self._held.add(lease)
        return lease

    def _local_refusal(self, lease: Lease) -> int:
        log.warning("stream caps counted in this process only: Redis is not answering")
        principals = Counter(held.principal for held in self._held)
        orgs = Counter(held.organization for held in self._held)
        if principals[lease.principal] >= self.per_principal:
            return 1
        return 2 if orgs[lease.organization] >= self.per_org else 0

    def release_soon(self, lease: Lease) -> None:
        """Give the lease back without waiting (from a stream's cleanup, which may be
        running because its task was cancelled)."""
        if lease not in self._held:
            return
        task = asyncio.get_running_loop().create_task(self.release(lease))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def release(self, lease: Lease) -> None:
        if lease not in self._held:
            return
        self._held.discard(lease)
        principal_key, org_key = self._keys(lease)
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.zrem(principal_key, lease.member)
            pipe.zrem(org_key, lease.member)
            await pipe.execute()
        except UNAVAILABLE:
            pass  # the lease lapses on its own

    async def renew(self) -> None:
        now = asyncio.get_running_loop().time()
        for lease in [h for h in self._held if not h.started]:
            if now - lease.taken_at > UNSTARTED_SECONDS:
                await self.release(lease)
        held = list(self._held)
        if not held:
            return
        keys = [key for lease in held for key in self._keys(lease)]
        await self.renew_script(keys=keys, args=[LEASE_SECONDS, *(h.member for h in held)])

    async def run(self) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            try:
                await self.renew()
            except UNAVAILABLE:
                log.warning("stream leases not renewed: Redis is not answering")

    async def stop(self) -> None:
        await super().stop()
        if self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)
        for lease in list(self._held):
            await self.release(lease)
