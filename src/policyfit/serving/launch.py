"""Start ``policyfit serve`` in a child process and wait until it listens.

For notebooks, load tests and crash tests that need a real server process (one they can
``kill -9``): the server is started with ``--port 0`` (any free port) and this returns once its one
startup line has named the URL.

Example:
    >>> proc, url = start_server_process("runs/crr-cartpole-replay-s0",   # doctest: +SKIP
    ...                                  ["--explore", "epsilon:0.1", "--log", "logs/"])
    >>> proc.terminate()                                                  # doctest: +SKIP
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from policyfit.errors import PolicyfitError


def start_server_process(
    run: str | Path,
    args: Sequence[str] = (),
    timeout: float = 120.0,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen, str]:
    """``policyfit serve RUN --port 0 *args`` as a child process; returns it and its URL.

    Raises:
        PolicyfitError: the server exited or named no URL within ``timeout`` seconds (its output
            is in the message); the process is killed.
    """
    cmd = [sys.executable, "-m", "policyfit.cli", "serve", str(run), "--port", "0", *args]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "http://" in line:
                found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(timeout):
        proc.kill()
        output = "".join(lines).strip().replace("\n", " | ")
        raise PolicyfitError(
            f"the server did not start within {timeout:.0f} s; its output: {output or '(none)'}",
            path=str(run),
            field="serve",
        )
    url = next(w for line in lines for w in line.split() if w.startswith("http://"))
    return proc, url.rstrip(",")
