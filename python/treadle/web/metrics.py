"""Prometheus metrics: request counts and latency histograms per route and status."""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Key = tuple[str, str, int]

# Any other method a client invents counts as OTHER: a label per invented method would let
# anyone add series to every worker without bound.
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


class Metrics:
    """In-process series; ``snapshot``/``merge`` let workers add theirs together."""

    def __init__(self) -> None:
        # key -> [count, sum, bucket counts...] (bucket counts are not cumulative here)
        self.series: dict[Key, list[float]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method if method in METHODS else "OTHER", route, status)
        row = self.series.get(key)
        if row is None:
            row = self.series[key] = [0.0] * (2 + len(BUCKETS) + 1)
        row[0] += 1
        row[1] += seconds
        row[2 + bisect_left(BUCKETS, seconds)] += 1

    def snapshot(self) -> list[list[Any]]:
        return [[m, r, s, row] for (m, r, s), row in self.series.items()]

    @staticmethod
    def render(snapshots: list[list[list[Any]]]) -> str:
        merged: dict[Key, list[float]] = {}
        for snapshot in snapshots:
            for method, route, status, row in snapshot:
                method = method if method in METHODS else "OTHER"
                key = (method, route, int(status))
                into = merged.setdefault(key, [0.0] * len(row))
                for i, v in enumerate(row):
                    into[i] += v
        out = [
            "# HELP treadle_http_requests_total HTTP requests by route and status.",
            "# TYPE treadle_http_requests_total counter",
        ]
        for (method, route, status), row in sorted(merged.items()):
            out.append(
                f'treadle_http_requests_total{{method="{method}",route="{route}",'
                f'status="{status}"}} {int(row[0])}'
            )
        out += [
            "# HELP treadle_http_request_duration_seconds HTTP request latency.",
            "# TYPE treadle_http_request_duration_seconds histogram",
        ]
        for (method, route, status), row in sorted(merged.items()):
            labels = f'method="{method}",route="{route}",status="{status}"'
            cumulative = 0.0
            for bound, count in zip((*BUCKETS, "+Inf"), row[2:], strict=True):
                cumulative += count
                out.append(
                    f'treadle_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} '
                    f"{int(cumulative)}"
                )
            out.append(f"treadle_http_request_duration_seconds_sum{{{labels}}} {row[1]:.6f}")
            out.append(f"treadle_http_request_duration_seconds_count{{{labels}}} {int(row[0])}")
        return "\n".join(out) + "\n"
