"""wrk from Debian, driven by a generated Lua script that POSTs a rotation of GraphQL bodies.

Each request picks one (authorization, body) pair at random; a response that is not 200 or
whose body carries "errors" counts as an error, so a fast wrong answer cannot look good.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench import debian

LUA_TEMPLATE = """
local requests = {%(requests)s}
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end
function init(args)
  errors = 0
  math.randomseed(os.time() * 100 + id)
end
function request()
  local r = requests[math.random(#requests)]
  return wrk.format("POST", "%(path)s", r[1], r[2])
end
function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then errors = errors + 1 end
end
function done(summary, latency, requests)
  local failed = 0
  for _, t in ipairs(threads) do failed = failed + t:get("errors") end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %%d, "duration_us": %%d, "bad_responses": %%d, "socket_errors": %%d, '
    .. '"p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "mean_us": %%.1f, "max_us": %%d}\\n',
    summary.requests, summary.duration, failed, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    latency.max))
end
"""


class WrkFailed(Exception):
    """wrk is missing or produced no result."""


@dataclass(frozen=True)
class Load:
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    requests: int
    bad_responses: int
    socket_errors: int


def ensure_wrk() -> str:
    """The path of wrk, installed from Debian when missing."""
    try:
        return debian.ensure("wrk")
    except debian.ToolMissing as exc:
        raise WrkFailed(str(exc)) from exc


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal here


def lua_script(path: str, requests: list[tuple[dict[str, str], str]]) -> str:
    entries = []
    for headers, body in requests:
        header_table = ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items())
        entries.append(f"{{{{{header_table}}}, {_lua_string(body)}}}")
    return LUA_TEMPLATE % {"requests": ",\n".join(entries), "path": path}


def run(url: str, requests: list[tuple[dict[str, str], str]], *, seconds: int,
        connections: int = 50, threads: int = 2) -> Load:
    """Load `url` for `seconds` with the given (headers, body) rotation; return the figures."""
    parts = urlsplit(url)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua_script(parts.path, requests))
    try:
        out = subprocess.run(
            [ensure_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
             "-s", script.name, f"{parts.scheme}://{parts.netloc}"],
            capture_output=True, text=True, check=False, timeout=seconds + 60)
    finally:
        Path(script.name).unlink()
    match = re.search(r"^RESULT (\{.*\})$", out.stdout, re.MULTILINE)
    if out.returncode != 0 or not match:
        raise WrkFailed(f"wrk exited {out.returncode}: {(out.stderr or out.stdout).strip()[-400:]}")
    raw = json.loads(match.group(1))
    return Load(
        requests_per_s=round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        p50_ms=raw["p50_us"] / 1000, p90_ms=raw["p90_us"] / 1000, p99_ms=raw["p99_us"] / 1000,
        mean_ms=round(raw["mean_us"] / 1000, 3), max_ms=raw["max_us"] / 1000,
        requests=raw["requests"], bad_responses=raw["bad_responses"],
        socket_errors=raw["socket_errors"])
