"""TREADLE_BACKPRESSURE reaches Granian: it bounds the requests one worker serves at once,
and every open event stream holds one of them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.api import bearer, create_org, signup
from tests.support.events import open_stream
from tests.support.servers import Server, free_port, start_server


@pytest.fixture
def narrow(server_env: dict[str, str], tmp_path) -> Iterator[Server]:
    # Streams may take every slot here (by default they get half): what is tested is
    # that Granian's budget holds them.
    env = {
        **server_env,
        "TREADLE_PORT": str(free_port()),
        "TREADLE_BACKPRESSURE": "2",
        "TREADLE_EVENT_STREAMS_PER_PROCESS": "2",
    }
    server = start_server("granian", env, tmp_path / "server.log")
    yield server
    server.stop()


def test_open_streams_hold_the_workers_request_slots(narrow: Server) -> None:
    with narrow.client() as client:
        owner = signup(client)
        org_id = create_org(client, owner)["id"]
    params = {"organization_id": org_id}
    with open_stream(narrow, bearer(owner), params):
        with (
            open_stream(narrow, bearer(owner), params),
            pytest.raises(httpx.TimeoutException),
        ):
            httpx.get(narrow.url + "/healthz", timeout=1.0)
        # One stream closed: a slot is free again.
        assert httpx.get(narrow.url + "/healthz", timeout=5.0).status_code == 200
