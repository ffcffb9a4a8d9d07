"""Checkpoints without pickle: ``checkpoints/step_N/state.msgpack`` (flax msgpack) + ``meta.json``.

msgpack holds only arrays, numbers, strings and containers; restoring fills a freshly initialised
train state of the same algorithm and config (``flax.serialization.from_bytes``), so reading a
checkpoint never executes code from the file. Writes go to a temporary directory that is renamed
into place, so a run killed mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from policyfit.common.files import atomic_write_bytes, write_json
from policyfit.errors import PolicyfitError

STEP_DIR = re.compile(r"^step_(\d+)$")


def checkpoint_dir(run_dir: Path) -> Path:
    from policyfit.training.rundir import RunDir

    return RunDir(run_dir).checkpoints_dir


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run, oldest first."""
    root = checkpoint_dir(Path(run_dir))
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = STEP_DIR.match(child.name)
        if match and (child / "state.msgpack").is_file() and (child / "meta.json").is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def save_checkpoint(run_dir: str | Path, step: int, state: Any, meta: dict, keep: int = 2) -> Path:
    """Write the train state at ``step``; keep the ``keep`` most recent checkpoints."""
    root = checkpoint_dir(Path(run_dir))
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step}"
    tmp = root / f".step_{step}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    host_state = jax.tree_util.tree_map(np.asarray, jax.device_get(state))
    atomic_write_bytes(tmp / "state.msgpack", serialization.to_bytes(host_state))
    write_json(tmp / "meta.json", {"step": step, **meta})
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for _, old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def restore_checkpoint(path: str | Path, target: Any) -> tuple[Any, dict]:
    """The state stored in checkpoint directory ``path``, in the structure of ``target``."""
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
        state = serialization.from_bytes(target, (path / "state.msgpack").read_bytes())
    except (OSError, ValueError, KeyError) as exc:
        raise PolicyfitError(
            f"cannot restore checkpoint ({exc}); was it written by the same algorithm and config?",
            path=str(path),
            field="checkpoint",
        ) from None
    state = jax.tree_util.tree_map(jax.numpy.asarray, state)
    return state, meta
