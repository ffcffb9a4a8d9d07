"""The decision log: one JSON line per decided observation, on disk before the answer is sent.

``policyfit serve --log DIR`` writes ``DIR/decisions-<start time>-<pid>.jsonl``: a header line
(:data:`LOG_FORMAT`, the policy, its fingerprint, the action space, the exploration mode) and then
one record per observation it answered::

    {"request_id": "...", "index": 0, "time": 1764462732.51, "time_iso": "2026-11-30T00:32:12.510Z",
     "obs": [...], "action": 1, "propensity": 0.95, "policy": "<sha256>", "explore": "epsilon:0.1",
     "episode_id": "e7", "step": 3}                      # episode_id / step when the client sent them

**Durability.** A request's lines are written, flushed and ``fsync``-ed before its response is
sent, so a crash (``kill -9``, a power cut) loses no decision that was answered. The server uses
*group commit* by default: requests that arrive while a write + fsync is in flight wait together
and share the next one (one ``fsync`` for all of them), which keeps the guarantee and divides the
fsync cost among concurrent requests (``benchmarks/serve_load.py`` measures both modes).
``sync="each"`` gives every request its own write + fsync, one at a time.

A crash in the middle of a write can leave the **last** line of a file torn (no newline, or not
complete JSON); such a line was never answered. :func:`read_log_file` drops it and reports it. A
bad line anywhere else is corruption and raises a :class:`~policyfit.errors.DatasetError` naming
the file, the line and the field.

Example:
    >>> import asyncio, tempfile
    >>> log = DecisionLog(tempfile.mkdtemp(), {"policy": "abc"})
    >>> asyncio.run(log.append(encode_records("r1", 0.0, [[0.5]], [1], [0.9], "abc", "greedy")))
    >>> log.close()
    >>> [r["action"] for r in read_log_file(log.path).records]
    [1]
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from policyfit.errors import DatasetError

LOG_FORMAT = "policyfit-decision-log/1"
FILE_GLOB = "decisions-*.jsonl"
SYNC_MODES = ("group", "each")
# fields every record has, and the JSON types each may take
RECORD_FIELDS: dict[str, tuple[type, ...]] = {
    "request_id": (str,),
    "index": (int,),
    "time": (int, float),
    "obs": (list,),
    "action": (int, list),
    "propensity": (int, float),
    "policy": (str,),
}


class LogWriteError(Exception):
    """The decision log could not be written; the server stops answering (503)."""


def iso_time(unix: float) -> str:
    """``2026-11-30T00:32:12.510123Z`` (UTC, microseconds)."""
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def log_file_name(start: float, pid: int) -> str:
    """``decisions-20261130T003212Z-<pid>.jsonl``: sorts by start time, unique per process."""
    stamp = datetime.fromtimestamp(start, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"decisions-{stamp}-{pid}.jsonl"


def encode_records(
    request_id: str,
    unix_time: float,
    obs: Sequence[Any],
    actions: Sequence[Any],
    propensities: Sequence[float],
    policy: str,
    explore: str,
    episode_ids: Sequence[Any] | None = None,
    steps: Sequence[Any] | None = None,
) -> bytes:
    """The log lines (``\\n``-terminated JSON, UTF-8) of one request's decisions, row by row."""
    stamp = iso_time(unix_time)
    lines = []
    for i, (o, a, p) in enumerate(zip(obs, actions, propensities, strict=True)):
        record: dict[str, Any] = {
            "request_id": request_id,
            "index": i,
            "time": unix_time,
            "time_iso": stamp,
            "obs": o,
            "action": a,
            "propensity": p,
            "policy": policy,
            "explore": explore,
        }
        if episode_ids is not None and episode_ids[i] is not None:
            record["episode_id"] = episode_ids[i]
        if steps is not None and steps[i] is not None:
            record["step"] = steps[i]
        lines.append(json.dumps(record, separators=(",", ":"), allow_nan=False))
    return ("\n".join(lines) + "\n").encode("utf-8")


class DecisionLog:
    """An append-only decision log file with write + fsync before each answer (group commit).

    ``append`` is a coroutine: it returns once the bytes are on disk. Built in an event loop
    thread or outside one; all ``append`` calls must come from the same event loop.
    """

    def __init__(self, directory: str | os.PathLike, header: dict[str, Any], sync: str = "group"):
        if sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {SYNC_MODES}, got {sync!r}")
        self.directory = Path(directory)
        self.sync = sync
        started = time.time()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.path = self.directory / log_file_name(started, os.getpid())
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o666)
        except OSError as exc:
            raise DatasetError(
                f"cannot create the decision log: {exc.strerror or exc}",
                path=str(directory),
                field="log",
            ) from None
        head = {"format": LOG_FORMAT, "started": iso_time(started), "pid": os.getpid(), **header}
        self._write_sync(json.dumps(head, separators=(",", ":")).encode() + b"\n")
        _fsync_dir(self.directory)
        self.broken: str | None = None
        self.records = 0
        self.commits = 0
        self.sync_seconds = 0.0
        self._pending: list[tuple[bytes, asyncio.Future]] = []
        self._draining = False
        self._lock: asyncio.Lock | None = None

    # ------------------------------------------------------------------ writing
    def _write_sync(self, data: bytes) -> None:
        """Write all of ``data`` and fsync (a plain file descriptor: nothing is buffered)."""
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)

    def _commit_sync(self, data: bytes) -> None:
        t0 = time.perf_counter()
        self._write_sync(data)
        self.sync_seconds += time.perf_counter() - t0
        self.commits += 1

    async def append(self, data: bytes) -> None:
        """Return once ``data`` (whole lines) is written and fsync-ed; raise LogWriteError if the
        log is broken (an earlier write failed) or this write fails."""
        if self.broken:
            raise LogWriteError(self.broken)
        lines = data.count(b"\n")
        if self.sync == "each":
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                if self.broken:
                    raise LogWriteError(self.broken)
                try:
                    await asyncio.to_thread(self._commit_sync, data)
                except OSError as exc:
                    self._break(exc)
                    raise LogWriteError(self.broken) from None
            self.records += lines
            return
        future = asyncio.get_running_loop().create_future()
        self._pending.append((data, future))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        await future
        self.records += lines

    async def _drain(self) -> None:
        """Commit everything queued, one write + fsync per round, until the queue is empty."""
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                if self.broken is None:
                    try:
                        await asyncio.to_thread(self._commit_sync, b"".join(d for d, _ in batch))
                    except OSError as exc:
                        self._break(exc)
                for _, future in batch:
                    if future.done():
                        continue
                    if self.broken:
                        future.set_exception(LogWriteError(self.broken))
                    else:
                        future.set_result(None)
        finally:
            self._draining = False

    def _break(self, exc: OSError) -> None:
        self.broken = f"decision log {self.path} could not be written: {exc.strerror or exc}"

    def stats(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sync": self.sync,
            "records": self.records,
            "commits": self.commits,
            "sync_seconds": round(self.sync_seconds, 6),
            "broken": self.broken,
        }

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _fsync_dir(directory: Path) -> None:
    """Make the new file's directory entry durable too (best effort where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- reading
@dataclass
class LogFile:
    """One decision log file as read: its header, its records (with their line numbers) and the
    torn last line, if any (its line number; it was never answered and is left out)."""

    path: Path
    header: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    torn_line: int | None = None


def _fail(path: Path, line: int, fieldname: str, message: str) -> DatasetError:
    return DatasetError(f"line {line}: {message}", path=str(path), field=fieldname)


def _check_record(record: Any, path: Path, line: int) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise _fail(path, line, "record", "not a JSON object")
    for name, types in RECORD_FIELDS.items():
        if name not in record:
            raise _fail(path, line, name, "missing; is this a policyfit decision log?")
        value = record[name]
        if isinstance(value, bool) or not isinstance(value, types):
            raise _fail(path, line, name, f"has the wrong type ({type(value).__name__})")
    return record


def read_log_file(path: str | os.PathLike) -> LogFile:
    """Read one decision log; a torn last line is dropped and reported in ``torn_line``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(
            f"cannot read the decision log: {exc.strerror or exc}", path=str(path), field="file"
        ) from None
    raw_lines = data.split(b"\n")
    # a file that ends with "\n" splits into [..., b""]; anything else ends in a torn line
    complete, tail = raw_lines[:-1], raw_lines[-1]
    torn_line = len(raw_lines) if tail.strip() else None
    if not complete:
        raise DatasetError(
            f'empty or torn header; expected a first line with "format": "{LOG_FORMAT}"',
            path=str(path),
            field="header",
        )
    header = _parse_line(complete[0], path, 1, "header")
    if not isinstance(header, dict) or header.get("format") != LOG_FORMAT:
        raise _fail(
            path, 1, "header", f'not a policyfit decision log (no "format": "{LOG_FORMAT}")'
        )
    log = LogFile(path, header, torn_line=torn_line)
    for number, raw in enumerate(complete[1:], start=2):
        if not raw.strip():
            continue
        log.records.append(_check_record(_parse_line(raw, path, number, "record"), path, number))
        log.lines.append(number)
    return log


def _parse_line(raw: bytes, path: Path, line: int, fieldname: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _fail(path, line, fieldname, f"not valid JSON ({exc})") from None


def read_log_dir(directory: str | os.PathLike) -> list[LogFile]:
    """Every ``decisions-*.jsonl`` of ``directory`` (or one log file), oldest first."""
    directory = Path(directory)
    if directory.is_file():
        return [read_log_file(directory)]
    if not directory.is_dir():
        raise DatasetError("no such directory", path=str(directory), field="log")
    files = sorted(directory.glob(FILE_GLOB))
    if not files:
        raise DatasetError(
            f"no decision logs ({FILE_GLOB}) in this directory; is it the --log DIR of "
            "`policyfit serve`?",
            path=str(directory),
            field="log",
        )
    return [read_log_file(f) for f in files]
