"""Run ``wrk --latency`` and read its report."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from typing import Any

INSTALL_HINT = """wrk is not installed; http_compare.py drives the servers with it.
  Debian/Ubuntu:  sudo apt-get install wrk
  macOS:          brew install wrk
  from source:    https://github.com/wg/wrk"""

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_LATENCY = re.compile(r"^\s*(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass(frozen=True, slots=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def available() -> bool:
    return shutil.which("wrk") is not None


def version() -> str:
    # wrk -v prints its version and then the usage text, and exits 1.
    if not available():
        return "not installed"
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).splitlines()[0].strip()


def run(
    url: str,
    *,
    duration: int,
    threads: int,
    connections: int,
    headers: dict[str, str] | None = None,
    script: str | None = None,
) -> tuple[WrkResult, str]:
    """One wrk run (``script``: a wrk Lua file, e.g. for a POST body); returns the parsed
    figures and wrk's own report."""
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        "5s",
    ]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    if script is not None:
        argv += ["-s", script]
    argv.append(url)
    out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=duration + 30)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip() or out.stdout}")
    return parse(out.stdout), out.stdout


def parse(report: str) -> WrkResult:
    rps = _RPS.search(report)
    total = _TOTAL.search(report)
    if rps is None or total is None:
        raise ValueError(f"not a wrk --latency report:\n{report}")
    latency = {p: float(v) * _UNITS[unit] for p, v, unit in _LATENCY.findall(report)}
    non_2xx = _NON_2XX.search(report)
    sockets = _SOCKET.search(report)
    return WrkResult(
        rps=float(rps.group(1)),
        p50_ms=latency.get("50", float("nan")),
        p99_ms=latency.get("99", float("nan")),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
    )
