"""The policy server: a Starlette app that answers ``POST /act`` with actions and propensities.

Built from a run directory or a ``policy/`` folder (:func:`policyfit.load_policy`)::

    POST /act      {"obs": [0.1, 0.2, 0.3]}                      one observation
                   {"obs": [[...], [...]], "request_id": "r-17"}  a batch
                   optional: "request_id" (a string; else a uuid4 is made), "episode_id" and
                   "step" (a value for one observation, a list of one per row for a batch),
                   "reward" (policies that keep a carry, e.g. rvs_r: the reward the episode's
                   previous action earned, fed to ``observe_reward`` before acting)
               ->  {"request_id": "r-17", "action": [...], "propensity": [...], "policy": "<sha256>"}
    GET /health    {"status": "ok", ...}; 503 when the decision log cannot be written
    GET /metadata  algorithm, observation/action dimensions and space, fingerprint (sha256 of
                   params.msgpack), exploration mode, policyfit version

A bad request gets a 4xx and ``{"error": "<one line>"}`` (400: not JSON; 413: body too large;
422: well-formed JSON that is not a valid request: wrong shape, strings, NaN, an empty or too
large batch, unknown fields). Anything unexpected is still answered in JSON (500).

With a decision log (:mod:`policyfit.serving.decision_log`) every decided observation is on disk
(write + fsync) before its response is sent.

Example:
    >>> server = PolicyServer.from_path("runs/iql-hopper-medium-s0", log_dir="logs")  # doctest: +SKIP
    >>> app = build_app(server)                                                       # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
import traceback
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from policyfit.common.files import to_jsonable
from policyfit.errors import ConfigError, PolicyfitError
from policyfit.serving.decide import Decider, Explore, parse_explore
from policyfit.serving.decision_log import DecisionLog, LogWriteError, encode_records

DEFAULT_MAX_BATCH = 1024
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_ID_CHARS = 256
MAX_EPISODES = 100_000  # carries kept for stateful policies (least recently used dropped first)
REQUEST_FIELDS = ("obs", "request_id", "episode_id", "step", "reward")


class RequestError(Exception):
    """A bad request: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ActRequest:
    """A validated ``POST /act`` body."""

    obs: np.ndarray  # [B, obs_dim] float32
    single: bool
    request_id: str
    episode_ids: list[Any] | None = None
    steps: list[int | None] | None = None
    rewards: list[float | None] | None = None


# ----------------------------------------------------------------------------- validation
def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return f"a string ({value[:20]!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _describe_bad_obs(obs: list, single: bool) -> str:
    """What makes ``obs`` not a list of numbers or a list of equal-length lists of numbers."""
    rows = [obs] if single else obs
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            return f"obs[{i}] is {_kind(row)}, not a list of numbers (a batch is a list of lists)"
    lengths = sorted({len(r) for r in rows})
    if len(lengths) > 1:
        return f"obs: rows of different lengths {lengths}; every observation has the same size"
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            if not _is_number(value):
                where = f"obs[{j}]" if single else f"obs[{i}][{j}]"
                return f"{where} is {_kind(value)}; observations hold numbers only"
    return "obs: a number is too large"


def parse_obs(obs: Any, obs_dim: int, max_batch: int) -> tuple[np.ndarray, bool]:
    """``obs`` as a float32 ``[B, obs_dim]`` array and whether it was one observation."""
    shape_help = f"send {obs_dim} numbers, or a batch [[{obs_dim} numbers], ...]"
    if not isinstance(obs, list):
        raise RequestError(422, f"obs: is {_kind(obs)}; {shape_help}")
    if not obs:
        raise RequestError(422, f"obs: empty; {shape_help}")
    single = not isinstance(obs[0], list)
    try:
        arr = np.array(obs)
    except (ValueError, OverflowError):
        arr = None  # ragged rows or mixed nesting
    rows = [obs] if single else obs
    if (
        arr is None
        or arr.dtype.kind not in "iuf"
        or any(v is True or v is False for row in rows for v in row)
    ):
        raise RequestError(422, _describe_bad_obs(obs, single))
    if single:
        arr = arr[None]
    if arr.ndim != 2:
        raise RequestError(
            422, f"obs: nested {arr.ndim} deep (shape {list(arr.shape)}); {shape_help}"
        )
    if arr.shape[1] != obs_dim:
        raise RequestError(
            422,
            f"obs: {arr.shape[1]} numbers per observation; the policy expects {obs_dim}",
        )
    if arr.shape[0] > max_batch:
        raise RequestError(
            422,
            f"obs: a batch of {arr.shape[0]} observations; this server takes at most "
            f"{max_batch} per request (--max-batch)",
        )
    with np.errstate(over="ignore", invalid="ignore"):
        arr32 = arr.astype(np.float32)
    bad = ~np.isfinite(arr32)
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        where = f"obs[{j}]" if single else f"obs[{i}][{j}]"
        raise RequestError(
            422, f"{where} is not a finite number (NaN, Infinity, or beyond float32's range)"
        )
    return arr32, single


def _per_row(payload: dict, name: str, n: int, single: bool) -> list[Any] | None:
    """An optional per-observation field: a value for one observation, a list for a batch."""
    if name not in payload or payload[name] is None:
        return None
    value = payload[name]
    if single:
        return [value]
    if not isinstance(value, list) or len(value) != n:
        raise RequestError(
            422, f"{name}: a batch of {n} observation(s) needs a list of {n} values (one per row)"
        )
    return value


def _check_ids(values: list[Any] | None) -> None:
    for v in values or []:
        ok = v is None or (isinstance(v, str) and len(v) <= MAX_ID_CHARS) or _is_int(v)
        if not ok:
            raise RequestError(
                422,
                f"episode_id: is {_kind(v)}; use a string (<= {MAX_ID_CHARS} chars) or an integer",
            )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_steps(values: list[Any] | None) -> None:
    for v in values or []:
        if v is not None and not (_is_int(v) and v >= 0):
            raise RequestError(422, f"step: is {_kind(v)} {v!r}; use an integer >= 0")


def _check_rewards(values: list[Any] | None) -> None:
    for v in values or []:
        if v is not None and not (_is_number(v) and math.isfinite(v)):
            raise RequestError(422, f"reward: is {_kind(v)}; use a finite number")


def parse_act_request(body: bytes, obs_dim: int, max_batch: int = DEFAULT_MAX_BATCH) -> ActRequest:
    """Validate a ``POST /act`` body; a :class:`RequestError` says what is wrong in one line."""
    if not body.strip():
        raise RequestError(400, 'empty body; send JSON such as {"obs": [...]}')
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"invalid JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(payload, dict):
        raise RequestError(422, f'the body is {_kind(payload)}; send an object {{"obs": [...]}}')
    unknown = sorted(set(payload) - set(REQUEST_FIELDS))
    if unknown:
        raise RequestError(
            422, f"unknown field {unknown[0]!r}; valid fields: {', '.join(REQUEST_FIELDS)}"
        )
    if "obs" not in payload:
        raise RequestError(422, 'obs: missing; send {"obs": [...]}')
    obs, single = parse_obs(payload["obs"], obs_dim, max_batch)
    request_id = payload.get("request_id")
    if request_id is None:
        request_id = str(uuid.uuid4())
    elif not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_ID_CHARS:
        raise RequestError(
            422, f"request_id: is {_kind(request_id)}; use a non-empty string (<= {MAX_ID_CHARS})"
        )
    n = obs.shape[0]
    episode_ids = _per_row(payload, "episode_id", n, single)
    steps = _per_row(payload, "step", n, single)
    rewards = _per_row(payload, "reward", n, single)
    _check_ids(episode_ids)
    _check_steps(steps)
    _check_rewards(rewards)
    return ActRequest(obs, single, request_id, episode_ids, steps, rewards)


# ----------------------------------------------------------------------------- the server
def policy_fingerprint(policy_dir: Path) -> str:
    """sha256 of ``params.msgpack``: which parameters made a decision."""
    from policyfit.algos.policy import PARAMS_FILE

    digest = hashlib.sha256()
    with open(policy_dir / PARAMS_FILE, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_policy_dir(path: str | Path) -> Path:
    """The ``policy/`` folder :func:`policyfit.load_policy` reads for ``path``."""
    from policyfit.algos.policy import is_policy_dir
    from policyfit.training.rundir import RunDir

    run = RunDir(path)
    if is_policy_dir(run.policy_dir):
        return run.policy_dir
    return Path(path)


class PolicyServer:
    """The policy, its exploration mode, the decision log and the carries of open episodes."""

    def __init__(
        self,
        policy: Any,
        policy_dir: Path,
        explore: Explore,
        seed: int = 0,
        log_dir: str | Path | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        log_sync: str = "group",
    ):
        from policyfit import __version__

        if max_batch < 1:
            raise ConfigError(f"must be >= 1 (got {max_batch})", field="max_batch")
        self.policy, self.explore, self.seed = policy, explore, seed
        self.max_batch = max_batch
        self.decider = Decider(policy, explore, seed)
        self.fingerprint = policy_fingerprint(policy_dir)
        spec = policy.spec
        if policy.discrete:
            space: dict[str, Any] = {"type": "discrete", "n": int(spec.action_dim)}
        else:
            space = {"type": "box", "low": list(spec.action_low), "high": list(spec.action_high)}
        self.metadata = to_jsonable(
            {
                "algorithm": policy.name,
                "policyfit_version": __version__,
                "fingerprint": self.fingerprint,
                "policy_path": str(policy_dir),
                "observation_dim": int(policy.observation_dim),
                "action_dim": int(spec.action_dim),
                "action_space": space,
                "stateful": bool(policy.stateful),
                "explore": str(explore),
                "propensity": "density"
                if not policy.discrete and explore.kind != "greedy"
                else "probability",
                "seed": seed,
                "max_batch": max_batch,
            }
        )  # strict JSON: infinite action bounds become null
        self.episodes: OrderedDict[Any, Any] = OrderedDict()
        self._initial_carry = policy.initial_carry(1)
        self.started = time.time()
        self.log: DecisionLog | None = None
        if log_dir is not None:
            header = {k: v for k, v in self.metadata.items() if k not in ("max_batch",)}
            self.log = DecisionLog(log_dir, header, sync=log_sync)
            self.metadata["log"] = str(self.log.path)
            self.metadata["log_sync"] = log_sync
        # compile act for one observation now, not on the first request
        policy.act(np.zeros((1, policy.observation_dim), np.float32), self._initial_carry)

    @classmethod
    def from_path(
        cls,
        path: str | Path,
        explore: str | Explore = "greedy",
        overrides: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> PolicyServer:
        """A server for the policy of a run directory or ``policy/`` folder; ``overrides``
        change config fields that matter when acting (RvS-R's ``target_return``)."""
        from policyfit.training.rundir import load_policy

        mode = explore if isinstance(explore, Explore) else parse_explore(explore)
        policy = load_policy(path, **(overrides or {}))
        return cls(policy, resolve_policy_dir(path), mode, **kwargs)

    # ------------------------------------------------------------------ carries
    def _carry(self, request: ActRequest | None, n: int) -> Any:
        """The carry of each row: its episode's (stateful policies), else the initial one."""
        if not self.policy.stateful or request is None or request.episode_ids is None:
            return self.policy.initial_carry(n)
        import jax

        ids = [e for e in request.episode_ids if e is not None]
        if len(ids) != len(set(ids)):
            raise RequestError(
                422,
                "episode_id: the same episode twice in one batch; a policy with a carry acts on "
                "one step of an episode at a time",
            )
        rows = []
        for i, eid in enumerate(request.episode_ids):
            carry = self.episodes.get(eid) if eid is not None else None
            reward = request.rewards[i] if request.rewards is not None else None
            if reward is not None and eid is None:
                raise RequestError(
                    422, "reward: needs an episode_id (the episode whose last action earned it)"
                )
            if carry is None:
                carry = self._initial_carry
            elif reward is not None:
                carry = self.policy.observe_reward(carry, np.array([reward], np.float32))
            rows.append(carry)
        return jax.tree_util.tree_map(lambda *c: np.concatenate(c), *rows)

    def _keep_carries(self, request: ActRequest, carry: Any) -> None:
        if not self.policy.stateful or request.episode_ids is None:
            return
        import jax

        for i, eid in enumerate(request.episode_ids):
            if eid is None:
                continue
            self.episodes[eid] = jax.tree_util.tree_map(lambda c, i=i: c[i : i + 1], carry)
            self.episodes.move_to_end(eid)
        while len(self.episodes) > MAX_EPISODES:
            self.episodes.popitem(last=False)

    # ------------------------------------------------------------------ acting
    def decide(self, request: ActRequest) -> tuple[dict[str, Any], bytes | None]:
        """The response body and the log lines for a validated request (synchronous)."""
        now = time.time()
        n = request.obs.shape[0]
        if request.rewards is not None and not self.policy.stateful:
            raise RequestError(
                422,
                f"reward: {self.policy.name} keeps no carry, so /act takes no reward; give "
                "rewards to `policyfit data import-log --rewards`",
            )
        if request.rewards is not None and request.episode_ids is None:
            raise RequestError(
                422, "reward: needs an episode_id (the episode whose last action earned it)"
            )
        actions, propensity, carry = self.decider.decide(request.obs, self._carry(request, n))
        self._keep_carries(request, carry)
        action_list = actions.tolist()
        prop_list = [float(p) for p in propensity]
        lines = None
        if self.log is not None:
            lines = encode_records(
                request.request_id,
                now,
                request.obs.tolist(),
                action_list,
                prop_list,
                self.fingerprint,
                str(self.explore),
                request.episode_ids,
                request.steps,
            )
        body = {
            "request_id": request.request_id,
            "action": action_list[0] if request.single else action_list,
            "propensity": prop_list[0] if request.single else prop_list,
            "policy": self.fingerprint,
        }
        return body, lines

    def health(self) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {"status": "ok", "uptime_s": round(time.time() - self.started, 3)}
        if self.log is not None:
            body["log"] = self.log.stats()
            if self.log.broken:
                body.update(status="error", error=self.log.broken)
                return 503, body
        return 200, body

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


# ----------------------------------------------------------------------------- the ASGI app
async def _read_body(request: Any) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise RequestError(413, f"body of {declared} bytes; the limit is {MAX_BODY_BYTES}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestError(413, f"body larger than the limit of {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(server: PolicyServer) -> Any:
    """The Starlette app for ``server`` (routes /act, /health, /metadata)."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def act(request):
        try:
            body = await _read_body(request)
            parsed = parse_act_request(body, server.policy.observation_dim, server.max_batch)
            response, lines = server.decide(parsed)
            if lines is not None:
                await server.log.append(lines)
            return JSONResponse(response)
        except RequestError as exc:
            return error(exc.status, exc.message)
        except LogWriteError as exc:
            return error(503, str(exc))
        except PolicyfitError as exc:
            return error(422, exc.one_line())
        except Exception as exc:  # noqa: BLE001 - answer in JSON, and say what happened
            traceback.print_exc(file=sys.stderr)
            return error(500, f"internal error: {type(exc).__name__}: {exc}".splitlines()[0])

    async def health(request):
        status, body = server.health()
        return JSONResponse(body, status_code=status)

    async def metadata(request):
        return JSONResponse(server.metadata)

    async def http_error(request, exc: HTTPException):
        return error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

    async def internal_error(request, exc: Exception):
        return error(500, f"internal error: {type(exc).__name__}")

    return Starlette(
        routes=[
            Route("/act", act, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/metadata", metadata, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: internal_error},
    )


def serve(server: PolicyServer, host: str = "127.0.0.1", port: int = 8000, announce=print) -> None:
    """Run ``server`` under uvicorn until interrupted; ``announce`` gets one line with the URL
    once the socket listens (``port=0`` picks a free port, and the line names it)."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if self.started:
                bound = self.servers[0].sockets[0].getsockname()
                where = f"http://{bound[0]}:{bound[1]}"
                log = f", decision log {server.log.path}" if server.log is not None else ""
                announce(
                    f"serving {server.policy.name} policy {server.fingerprint[:12]} "
                    f"(explore {server.explore}) on {where}{log}"
                )

    config = uvicorn.Config(
        build_app(server), host=host, port=port, log_level="warning", access_log=False
    )
    try:
        Server(config).run()
    finally:
        server.close()
