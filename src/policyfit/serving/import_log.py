"""``policyfit data import-log``: decision logs plus later-arriving rewards -> data to learn from.

The server logs what it decided (:mod:`policyfit.serving.decision_log`); what the decisions earned
arrives later, from elsewhere, in a rewards file keyed by the request id:

* CSV with a header: ``request_id,reward`` and optionally ``index`` (the row in a batch request;
  default 0) and ``terminal`` (``1/0``, ``true/false``, empty);
* or JSON lines: ``{"request_id": "r-17", "reward": 1.0, "index": 0, "terminal": true}``.

Decisions without a reward are dropped (and counted); rewards whose decision is not in the logs are
counted too. Two outputs:

``dataset``
    A :class:`~policyfit.data.Dataset` (npz, HDF5 or Minari, by the extension of ``--out``) with
    the logged propensities as the per-transition extra array ``propensities``. Decisions with an
    ``episode_id`` form episodes ordered by ``step`` (or by log order when no step was sent); the
    next observation of a step is the observation of the episode's next step. An episode is cut
    (``timeouts``) where the next step is missing, has no reward, or the step numbers jump; a
    step whose next observation was never logged (the last one of a cut episode) repeats its own
    observation as ``next_observations`` and is counted as ``unknown_next_observations``. A
    decision without ``episode_id`` is a one-step episode, terminal unless its reward row says
    ``terminal: false``.
``bandit`` (discrete actions only)
    An ``.npz`` with the keys of Open Bandit Pipeline's ``bandit_feedback`` dict: ``n_rounds``,
    ``n_actions``, ``context`` ``[n, d]``, ``action``, ``reward``, ``pscore`` (the logged
    propensity), ``position`` (zeros) and ``action_context`` (the ``K x K`` identity), rounds in
    log order.

Example:
    >>> summary = import_log("logs/", "rewards.csv", "feedback.npz", fmt="bandit")  # doctest: +SKIP
    >>> summary["rounds"], summary["dropped_without_reward"]                        # doctest: +SKIP
    (9812, 188)
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from policyfit.errors import DatasetError
from policyfit.serving.decision_log import LogFile, read_log_dir

FORMATS = ("dataset", "bandit")
BANDIT_KEYS = (
    "n_rounds",
    "n_actions",
    "context",
    "action",
    "reward",
    "pscore",
    "position",
    "action_context",
)
TRUE_WORDS = ("1", "true", "yes", "t", "y")
FALSE_WORDS = ("0", "false", "no", "f", "n")


@dataclass
class Reward:
    reward: float
    terminal: bool | None
    line: int


@dataclass
class Decision:
    record: dict[str, Any]
    path: Path
    line: int

    @property
    def key(self) -> tuple[str, int]:
        return self.record["request_id"], self.record["index"]

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


# ----------------------------------------------------------------------------- rewards
def _bad(path: Path, line: int, fieldname: str, message: str) -> DatasetError:
    return DatasetError(f"line {line}: {message}", path=str(path), field=fieldname)


def _reward_value(value: Any, path: Path, line: int) -> float:
    if isinstance(value, bool):
        raise _bad(path, line, "reward", f"{value!r} is not a number")
    try:
        reward = float(value)
    except (TypeError, ValueError):
        raise _bad(path, line, "reward", f"{value!r} is not a number") from None
    if not math.isfinite(reward):
        raise _bad(path, line, "reward", f"{value!r} is not a finite number")
    return reward


def _index_value(value: Any, path: Path, line: int) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise _bad(path, line, "index", f"{value!r} is not an integer >= 0")
    try:
        index = int(value) if isinstance(value, int) else int(str(value).strip())
    except ValueError:
        raise _bad(path, line, "index", f"{value!r} is not an integer >= 0") from None
    if index < 0:
        raise _bad(path, line, "index", f"{value!r} is not an integer >= 0")
    return index


def _terminal_value(value: Any, path: Path, line: int) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise _bad(path, line, "terminal", f"{value!r} is not true/false (or 1/0)")


def _request_id_value(value: Any, path: Path, line: int) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(path, line, "request_id", f"{value!r} is not a non-empty string")
    return value


def _rows_csv(text: str, path: Path):
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    for required in ("request_id", "reward"):
        if required not in columns:
            raise DatasetError(
                f"the CSV header has no {required!r} column (columns: {', '.join(columns) or 'none'})"
                "; expected request_id,reward[,index][,terminal]",
                path=str(path),
                field=required,
            )
    for row in reader:
        yield reader.line_num, row


def _rows_jsonl(text: str, path: Path):
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except ValueError as exc:
            raise _bad(path, number, "record", f"not valid JSON ({exc})") from None
        if not isinstance(row, dict):
            raise _bad(path, number, "record", "not a JSON object")
        for required in ("request_id", "reward"):
            if required not in row:
                raise _bad(path, number, required, "missing")
        yield number, row


def read_rewards(path: str | os.PathLike) -> dict[tuple[str, int], Reward]:
    """Rewards by ``(request_id, index)`` from a CSV or JSON-lines file (sniffed: a first
    non-blank character ``{`` means JSON lines)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(
            f"cannot read the rewards file: {exc}", path=str(path), field="file"
        ) from None
    is_jsonl = text.lstrip().startswith("{")
    rows = _rows_jsonl(text, path) if is_jsonl else _rows_csv(text, path)
    rewards: dict[tuple[str, int], Reward] = {}
    for line, row in rows:
        request_id = _request_id_value(row.get("request_id"), path, line)
        key = (request_id, _index_value(row.get("index"), path, line))
        if key in rewards:
            raise _bad(
                path,
                line,
                "request_id",
                f"request {key[0]!r} index {key[1]} already has a reward (line {rewards[key].line})",
            )
        rewards[key] = Reward(
            _reward_value(row.get("reward"), path, line),
            _terminal_value(row.get("terminal"), path, line),
            line,
        )
    return rewards


# ----------------------------------------------------------------------------- decisions
def _action_space(header: dict[str, Any], path: Path) -> dict[str, Any]:
    space = header.get("action_space")
    if not isinstance(space, dict) or space.get("type") not in ("discrete", "box"):
        raise DatasetError("the header has no valid action_space", path=str(path), field="header")
    return space


def _check_headers(files: list[LogFile]) -> tuple[int, dict[str, Any]]:
    """The observation size and action space every log file agrees on."""
    first = files[0]
    obs_dim = first.header.get("observation_dim")
    space = _action_space(first.header, first.path)
    for log in files[1:]:
        other = _action_space(log.header, log.path)
        if log.header.get("observation_dim") != obs_dim or other != space:
            raise DatasetError(
                f"observation_dim {log.header.get('observation_dim')} / action space {other} "
                f"differ from {first.path.name}'s ({obs_dim} / {space}); import logs of one "
                "problem at a time",
                path=str(log.path),
                field="header",
            )
    if not isinstance(obs_dim, int) or obs_dim < 1:
        raise DatasetError(
            "observation_dim missing in the header", path=str(first.path), field="header"
        )
    return obs_dim, space


def _check_decision(d: Decision, obs_dim: int, space: dict[str, Any]) -> None:
    rec = d.record
    if len(rec["obs"]) != obs_dim or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in rec["obs"]
    ):
        raise _bad(d.path, d.line, "obs", f"not {obs_dim} numbers")
    action = rec["action"]
    if space["type"] == "discrete":
        if not isinstance(action, int) or not 0 <= action < int(space["n"]):
            raise _bad(
                d.path, d.line, "action", f"{action!r} is not an action in [0, {space['n']})"
            )
    elif not isinstance(action, list) or len(action) != len(space["low"]):
        raise _bad(d.path, d.line, "action", f"not a list of {len(space['low'])} numbers")


def read_decisions(files: list[LogFile]) -> tuple[list[Decision], int, dict[str, Any]]:
    """All decisions in log order, checked; ``(decisions, obs_dim, action_space)``."""
    obs_dim, space = _check_headers(files)
    seen: dict[tuple[str, int], Decision] = {}
    decisions = []
    for log in files:
        for record, line in zip(log.records, log.lines, strict=True):
            d = Decision(record, log.path, line)
            _check_decision(d, obs_dim, space)
            if d.key in seen:
                raise _bad(
                    d.path,
                    d.line,
                    "request_id",
                    f"request {d.key[0]!r} index {d.key[1]} was logged twice (also at "
                    f"{seen[d.key].where}); rewards keyed by request id would be ambiguous",
                )
            seen[d.key] = d
            decisions.append(d)
    return decisions, obs_dim, space


# ----------------------------------------------------------------------------- outputs
def _bandit_arrays(
    decisions: list[Decision], rewards: dict[tuple[str, int], Reward], space: dict[str, Any]
) -> dict[str, np.ndarray]:
    kept = [d for d in decisions if d.key in rewards]
    if not kept:
        raise DatasetError("no decision has a reward; nothing to write", field="rewards")
    k = int(space["n"])
    return {
        "n_rounds": np.array(len(kept), dtype=np.int64),
        "n_actions": np.array(k, dtype=np.int64),
        "context": np.array([d.record["obs"] for d in kept], dtype=np.float64),
        "action": np.array([d.record["action"] for d in kept], dtype=np.int64),
        "reward": np.array([rewards[d.key].reward for d in kept], dtype=np.float64),
        "pscore": np.array([d.record["propensity"] for d in kept], dtype=np.float64),
        "position": np.zeros(len(kept), dtype=np.int64),
        "action_context": np.eye(k, dtype=np.float64),
    }


def _episodes(decisions: list[Decision]) -> list[list[Decision]]:
    """Decisions grouped by episode (one-step episodes for those without ``episode_id``), each
    ordered by ``step`` (or log order), episodes in the order of their first decision."""
    groups: OrderedDict[Any, list[Decision]] = OrderedDict()
    for i, d in enumerate(decisions):
        eid = d.record.get("episode_id")
        key = ("episode", type(eid).__name__, eid) if eid is not None else ("single", i)
        groups.setdefault(key, []).append(d)
    out = []
    for key, group in groups.items():
        with_step = [d for d in group if "step" in d.record]
        if with_step and len(with_step) != len(group):
            d = next(d for d in group if "step" not in d.record)
            raise _bad(
                d.path,
                d.line,
                "step",
                f"missing, while other decisions of episode {key[2]!r} have one",
            )
        if with_step:
            group = sorted(group, key=lambda d: d.record["step"])
            for a, b in zip(group, group[1:], strict=False):
                if a.record["step"] == b.record["step"]:
                    raise _bad(
                        b.path,
                        b.line,
                        "step",
                        f"episode {key[2]!r} has step {b.record['step']} twice (also {a.where})",
                    )
        out.append(group)
    return out


def _consecutive(a: Decision, b: Decision) -> bool:
    if "step" in a.record:
        return b.record["step"] == a.record["step"] + 1
    return True


def _transitions(
    decisions: list[Decision], rewards: dict[tuple[str, int], Reward]
) -> tuple[dict[str, list], int]:
    cols: dict[str, list] = {
        k: []
        for k in (
            "observations",
            "actions",
            "rewards",
            "terminals",
            "timeouts",
            "next_observations",
            "propensities",
        )
    }
    unknown_next = 0
    for group in _episodes(decisions):
        one_step = "episode_id" not in group[0].record
        for k, d in enumerate(group):
            reward = rewards.get(d.key)
            if reward is None:
                continue
            nxt = group[k + 1] if k + 1 < len(group) and _consecutive(d, group[k + 1]) else None
            terminal = reward.terminal if reward.terminal is not None else one_step
            if terminal and k + 1 < len(group):
                raise _bad(
                    d.path,
                    d.line,
                    "terminal",
                    f"episode {d.record['episode_id']!r} ends here (terminal reward, line "
                    f"{reward.line} of the rewards file) but has later steps ({group[k + 1].where})",
                )
            ends = terminal or nxt is None or nxt.key not in rewards
            if nxt is None and not terminal:
                unknown_next += 1
            cols["observations"].append(d.record["obs"])
            cols["actions"].append(d.record["action"])
            cols["rewards"].append(reward.reward)
            cols["terminals"].append(terminal)
            cols["timeouts"].append(ends and not terminal)
            cols["next_observations"].append((nxt or d).record["obs"])
            cols["propensities"].append(d.record["propensity"])
    return cols, unknown_next


def _box(space: dict[str, Any]) -> dict[str, Any]:
    """The header's box with JSON nulls (infinite bounds) back as infinities."""
    low = [-np.inf if v is None else float(v) for v in space["low"]]
    high = [np.inf if v is None else float(v) for v in space["high"]]
    return {"type": "box", "low": low, "high": high}


def _dataset(
    decisions: list[Decision],
    rewards: dict[tuple[str, int], Reward],
    space: dict[str, Any],
    files: list[LogFile],
    source: str,
) -> tuple[Any, int]:
    from policyfit.data import Dataset

    cols, unknown_next = _transitions(decisions, rewards)
    if not cols["rewards"]:
        raise DatasetError("no decision has a reward; nothing to write", field="rewards")
    discrete = space["type"] == "discrete"
    metadata = {
        "action_space": {"type": "discrete", "n": int(space["n"])} if discrete else _box(space),
        "card": {
            "source": "policyfit decision log",
            "algorithms": sorted({str(f.header.get("algorithm")) for f in files}),
            "policies": sorted({str(d.record["policy"]) for d in decisions}),
            "explore": sorted({str(d.record.get("explore")) for d in decisions}),
        },
        "extra_arrays": {"propensities": np.asarray(cols["propensities"], dtype=np.float64)},
    }
    ds = Dataset(
        observations=np.asarray(cols["observations"], dtype=np.float32),
        actions=np.asarray(cols["actions"], dtype=np.int64 if discrete else np.float32),
        rewards=np.asarray(cols["rewards"], dtype=np.float32),
        terminals=np.asarray(cols["terminals"], dtype=bool),
        timeouts=np.asarray(cols["timeouts"], dtype=bool),
        next_observations=np.asarray(cols["next_observations"], dtype=np.float32),
        metadata=metadata,
        source=source,
    )
    return ds, unknown_next


def import_log(
    log_dir: str | os.PathLike,
    rewards_path: str | os.PathLike,
    out: str | os.PathLike,
    fmt: str = "dataset",
) -> dict[str, Any]:
    """Join the decision logs in ``log_dir`` with ``rewards_path`` and write ``out``.

    Returns a summary: how many decisions, how many had a reward, how many were dropped, how many
    rewards matched no decision, torn last lines skipped, and what was written.
    """
    if fmt not in FORMATS:
        raise DatasetError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}", field="format")
    files = read_log_dir(log_dir)
    decisions, obs_dim, space = read_decisions(files)
    rewards = read_rewards(rewards_path)
    keys = {d.key for d in decisions}
    matched = sum(1 for d in decisions if d.key in rewards)
    summary: dict[str, Any] = {
        "format": fmt,
        "out": str(out),
        "log_files": len(files),
        "torn_lines": sum(1 for f in files if f.torn_line is not None),
        "decisions": len(decisions),
        "with_reward": matched,
        "dropped_without_reward": len(decisions) - matched,
        "rewards": len(rewards),
        "rewards_unmatched": sum(1 for k in rewards if k not in keys),
        "policies": len({d.record["policy"] for d in decisions}),
    }
    if fmt == "bandit":
        if space["type"] != "discrete":
            raise DatasetError(
                "bandit feedback needs discrete actions; these logs have a box action space "
                "(use --format dataset)",
                path=str(log_dir),
                field="format",
            )
        from policyfit.bandit.feedback import load_feedback, save_feedback

        # validated as any bandit feedback is (pscore in (0, 1], actions in range, shapes)
        feedback = load_feedback(_bandit_arrays(decisions, rewards, space))
        save_feedback(feedback, out)
        summary.update(rounds=feedback.n_rounds, n_actions=feedback.n_actions)
        return summary
    from policyfit.data.io import save_dataset

    ds, unknown_next = _dataset(decisions, rewards, space, files, f"decision log {log_dir}")
    save_dataset(ds, out)
    summary.update(
        transitions=len(ds), episodes=ds.num_episodes, unknown_next_observations=unknown_next
    )
    return summary
