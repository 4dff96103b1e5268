from __future__ import annotations

from treadle.web.metrics import Metrics


def test_histogram_is_cumulative_and_processes_add_up() -> None:
    one, two = Metrics(), Metrics()
    one.observe("GET", "/v1/me", 200, 0.0004)
    one.observe("GET", "/v1/me", 200, 0.02)
    two.observe("GET", "/v1/me", 200, 3.0)
    two.observe("POST", "/v1/auth/login", 401, 0.05)
    text = Metrics.render([one.snapshot(), two.snapshot()])
    me = 'method="GET",route="/v1/me",status="200"'
    assert f"treadle_http_requests_total{{{me}}} 3" in text
    assert f'treadle_http_request_duration_seconds_bucket{{{me},le="0.0005"}} 1' in text
    assert f'treadle_http_request_duration_seconds_bucket{{{me},le="0.025"}} 2' in text
    assert f'treadle_http_request_duration_seconds_bucket{{{me},le="+Inf"}} 3' in text
    assert f"treadle_http_request_duration_seconds_count{{{me}}} 3" in text
    assert 'status="401"' in text
