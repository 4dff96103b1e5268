"""Wires settings, storage, services and the route table into a kernel (one per process)."""

from __future__ import annotations

from treadle.api import routes
from treadle.bus.events import Events
from treadle.bus.invalidation import Invalidator
from treadle.bus.metrics import SharedMetrics
from treadle.bus.redis import connect
from treadle.errors import ApiError
from treadle.sealing import Sealer
from treadle.services.accounts import Accounts
from treadle.services.api_keys import ApiKeys
from treadle.services.assets import Assets
from treadle.services.authz import Authorizer
from treadle.services.edge_agents import EdgeAgents
from treadle.services.invitations import Invitations
from treadle.services.job_batches import JobBatches
from treadle.services.jobs import Jobs, Reaper
from treadle.services.mail import Mail
from treadle.services.ops import Ops
from treadle.services.orgs import Organizations
from treadle.services.passwords import Passwords
from treadle.services.providers import Providers
from treadle.services.ratelimits import RateLimits
from treadle.services.secrets import Secrets
from treadle.services.sessions import Sessions, bearer_token
from treadle.services.teams import Teams
from treadle.services.telemetry import Telemetry
from treadle.services.webhooks import Webhooks
from treadle.services.workflow_definitions import WorkflowDefinitions
from treadle.services.workflow_runs import WorkflowRuns, WorkflowTimers
from treadle.settings import Settings
from treadle.store.db import Database
from treadle.web.client_address import client_address, parse_trusted
from treadle.web.idempotency import Idempotency
from treadle.web.kernel import Kernel
from treadle.web.metrics import Metrics
from treadle.web.request import Request
from treadle.web.routing import Route, RouteTable
from treadle.workers.mailer import Mailer
from treadle.workers.retention import Sweeper
from treadle.workers.webhooks import Sender

API_KEY_PREFIX = "trd_"


class App:
    """The services a handler reaches through ``req.app``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(
            settings.database_url,
            settings.db_pool_min,
            settings.db_pool_max,
            settings.db_prepare_threshold,
        )
        self.redis = connect(settings.redis_url)
        self.bus = Invalidator(self.redis, settings.redis_prefix)
        self.sessions = Sessions(settings, self.db, self.bus)
        self.authz = Authorizer(self.db, self.bus)
        self.api_keys = ApiKeys(self.db, self.bus, self.sessions.hash_key)
        self.rate_limits = RateLimits(settings, self.db, self.redis, self.bus)
        self.idempotency = Idempotency(settings, self.db)
        self.sweeper = Sweeper(self.db, settings)
        self.events = Events(settings, self.db, self.redis)
        sealer = Sealer(settings.secret_key, "webhook secrets")
        self.webhook_sender = Sender(settings, self.db, sealer)
        self.webhooks = Webhooks(settings, self.db, sealer, self.webhook_sender.wake)
        if self.events.relay is not None:
            self.events.relay.deliveries_made = self.webhook_sender.wake
        self.jobs = Jobs(settings, self.db)
        self.job_batches = JobBatches(self.jobs)
        self.edge_agents = EdgeAgents(self.db, self.bus, self.api_keys, self.sessions.hash_key)
        self.telemetry = Telemetry(settings, self.db, self.edge_agents)
        self.workflow_definitions = WorkflowDefinitions(settings, self.db)
        self.workflow_runs = WorkflowRuns(settings, self.db, self.jobs)
        self.workflow_timers = WorkflowTimers(self.workflow_runs, settings.workflow_timer_seconds)
        self.reaper = Reaper(self.jobs, settings.job_reap_seconds)
        self.teams = Teams(self.db, self.authz)
        self.mailer = Mailer(settings, self.db)
        mail = Mail(settings)
        self.accounts = Accounts(
            settings,
            self.db,
            self.redis,
            self.sessions,
            Passwords(settings),
            mail,
            self.mailer.wake,
        )
        self.invitations = Invitations(
            settings, self.db, self.authz, self.sessions, mail, self.mailer.wake
        )
        self.orgs = Organizations(self.db, self.authz, self.invitations)
        self.ops = Ops(settings, self.db)
        self.secrets = Secrets(settings, self.db, self.bus)
        self.providers = Providers(settings, self.db, self.secrets, self.bus)
        self.assets = Assets(settings, self.db)
        self.metrics = Metrics()
        self.shared_metrics = SharedMetrics(self.redis, settings.redis_prefix, self.metrics)
        self.table: RouteTable | None = None

    async def start(self) -> None:
        await self.db.open()
        self.bus.start()
        self.mailer.start()
        self.api_keys.start()
        self.sweeper.start()
        self.reaper.start()
        self.workflow_timers.start()
        self.webhook_sender.start()
        await self.providers.start()
        await self.assets.start()
        self.shared_metrics.start()
        await self.events.start()

    async def stop(self) -> None:
        await self.events.stop()
        await self.reaper.stop()
        await self.workflow_timers.stop()
        await self.webhook_sender.stop()
        await self.providers.stop()
        await self.assets.stop()
        await self.shared_metrics.stop()
        await self.sweeper.stop()
        await self.api_keys.stop()
        await self.mailer.stop()
        await self.bus.stop()
        await self.db.close()
        await self.redis.aclose()


def build_kernel(settings: Settings) -> Kernel:
    app = App(settings)

    async def authenticate(req: Request, route: Route) -> object:
        token = bearer_token(req.headers.get("authorization"))
        if token.startswith(API_KEY_PREFIX):
            if route.auth != "any":
                raise ApiError.forbidden("this route needs a signed-in user, not an API key")
            key = await app.api_keys.authenticate(token)
            app.api_keys.count(key, route.path)
            return key
        principal = await app.sessions.authenticate(token)
        if route.auth == "admin" and not principal.is_platform_admin:
            raise ApiError.forbidden("this route is for platform admins")
        return principal

    async def authorize(req: Request, route: Route) -> None:
        # Set already when the kernel answers a retry from storage (the scope it acted in).
        scope = req.scope if req.scope is not None else await route.scope(req)  # type: ignore[misc]
        principal = req.principal
        if scope is None:
            # The resolver found the request platform-wide (operations views across every
            # organization): only a signed-in platform admin acts there.
            if not (principal.kind == "user" and principal.is_platform_admin):
                raise ApiError.forbidden("only platform admins act across every organization")
            return
        if principal.organization_id not in (None, scope.organization_id):
            # A key sees only its own organization.
            raise ApiError.not_found(f"no {scope.resource_type} with id {scope.resource_id}")
        await app.authz.ensure(scope.organization_id, key=scope.organization_key)
        decision = app.authz.check(
            scope, principal.subject, route.permission or "", list(principal.scopes) or None
        )
        if decision.reason in ("not_member", "unknown_organization"):
            # Another tenant's resource does not exist, as far as this caller can tell.
            raise ApiError.not_found(f"no {scope.resource_type} with id {scope.resource_id}")
        req.scope = scope
        if principal.kind == "user":
            # Only now is the organization known, and the caller known to belong to it.
            req.response_headers = await app.rate_limits.organization(
                scope.organization_id, route.cost, req.response_headers, scope.organization_key
            )
        if not decision.allowed:
            await app.authz.deny(req, route, scope, decision)

    trusted_proxies = parse_trusted(settings.trusted_proxies)

    async def admit(req: Request, route: Route) -> list[tuple[str, str]]:
        if req.principal is not None:
            return await app.rate_limits.check(req.principal, route.cost)
        if route.tag == "meta":
            # Probes, scrapers and the API document are never refused.
            return []
        address = client_address(req.client, req.headers.get, trusted_proxies)
        return await app.rate_limits.client(address, route.cost)

    kernel = Kernel(
        settings,
        RouteTable(routes()),
        authenticate,
        app,
        authorize,
        admit,
        app.idempotency.run,
        metrics=app.metrics,
        replay=app.idempotency.early,
    )
    app.table = kernel.table
    kernel.on_startup.append(app.start)
    kernel.on_shutdown.append(app.stop)
    kernel.on_stopping.append(app.events.stopping)
    return kernel
