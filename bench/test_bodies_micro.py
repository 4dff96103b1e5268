"""What bounding a body costs: ``treadle.web.bodies.decode`` (parse, bound, convert) against
msgspec's typed decode of the same JSON, which the kernel used before bodies were bounded.

Group ``bodies``: a 720-byte job submission and a 490 KB one (12,000 rows of input).
"""

from __future__ import annotations

import msgspec
import pytest

from treadle.api.jobs import NewJob
from treadle.web.bodies import decode

SMALL = msgspec.json.encode(
    {
        "type": "default",
        "input": {"prompt": "x" * 600, "n": 3, "tags": ["a", "b"], "opts": {"k": [1, 2]}},
        "labels": {"env": "prod"},
    }
)
LARGE = msgspec.json.encode(
    {
        "type": "default",
        "input": {"rows": [{"id": i, "name": f"row {i}", "v": i * 0.5} for i in range(12_000)]},
    }
)


@pytest.mark.parametrize("body", [SMALL, LARGE], ids=["1KB", "490KB"])
@pytest.mark.benchmark(group="bodies")
def test_typed_decode_baseline(benchmark, body: bytes) -> None:
    job = benchmark(msgspec.json.decode, body, type=NewJob)
    assert job.type == "default"


@pytest.mark.parametrize("body", [SMALL, LARGE], ids=["1KB", "490KB"])
@pytest.mark.benchmark(group="bodies")
def test_bounded_decode(benchmark, body: bytes) -> None:
    job = benchmark(decode, body, NewJob, "application/json", None)
    assert job == msgspec.json.decode(body, type=NewJob)
