"""The workstation's engine: `llmtui serve` in a child process, on a Unix socket in a private directory.

Decoding runs in its own interpreter, so the UI's compositor and the decode loop no longer share a GIL, and a
fault in the model (a CUDA error, the OOM killer) ends the engine, not the workstation. The child holds a pipe
from its parent on stdin and exits when it reads end-of-file: whatever kills the parent (SIGHUP from a dropped
SSH connection, SIGKILL), the kernel closes that pipe, so no orphan is left holding GPU memory. It runs in a
session of its own, so signals the terminal sends the workstation reach the engine only through that pipe,
after the workstation has kept the reply in flight.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from llmtui.backends.base import Progress
from llmtui.backends.client import ClientBackend
from llmtui.core.choices import ModelOptions
from llmtui.core.errors import EngineUnavailable, LlmtuiError, ModelLoadError
from llmtui.core.wire import API_KEY_ENV

POLL_SECONDS = 0.1
ERROR_PREFIX = "llmtui: error: "


# A Unix socket's path has room for 103 bytes on macOS, 107 on Linux; an engine's is its directory's base
# plus this.
SOCKET_PATH_MAX = 103
ENGINE_SOCKET = "llmtui-engine-xxxxxxxx/engine.sock"


def runtime_base() -> Path:
    """Where engine directories go: the user's runtime dir (/run/user/UID) when there is one, else the temp
    dir; /tmp when an engine's socket path under those would be too long to listen on."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    bases = [Path(runtime)] if runtime else []
    bases += [Path(tempfile.gettempdir()), Path("/tmp")]
    usable = [base for base in bases if base.is_dir() and os.access(base, os.W_OK)] or bases
    fits = (base for base in usable if len(os.fsencode(base / ENGINE_SOCKET)) <= SOCKET_PATH_MAX)
    return next(fits, usable[0])  # none fits: listening says so, naming the path


class EngineProcess(ClientBackend):
    """A ClientBackend that owns its server: the engine process, its socket and its log."""

    def __init__(self, process: subprocess.Popen[bytes], directory: Path) -> None:
        self.process = process
        self.directory = directory
        super().__init__(uds=str(directory / "engine.sock"))

    def unavailable(self, exc: BaseException) -> LlmtuiError:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=1.0)  # a dying process closes its socket a moment before it is reaped
        return EngineUnavailable(describe_exit(self.process, self.directory / "engine.log"))

    def close(self) -> None:
        """Stop the engine process and remove its directory."""
        super().close()
        stop(self.process)
        shutil.rmtree(self.directory, ignore_errors=True)


def describe_exit(process: subprocess.Popen[bytes], log: Path) -> str:
    """One sentence on why the engine process is gone (or that it stopped answering)."""
    code = process.poll()
    if code is None:
        return "the engine process stopped answering"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"the engine process was killed by {signal.Signals(-code).name}"
    reason = last_error(log)
    return f"the engine process exited with status {code}" + (f": {reason}" if reason else "")


def last_error(log: Path) -> str:
    """The last one-line error the engine printed, without its prefix."""
    with contextlib.suppress(OSError):
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        for line in reversed(lines):
            if line.startswith(ERROR_PREFIX):
                return line.removeprefix(ERROR_PREFIX).strip()
    return ""


def stop(process: subprocess.Popen[bytes]) -> None:
    """End the engine process: close its pipe (it exits on end-of-file), then SIGTERM, then SIGKILL."""
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()
    for send, wait in ((None, 2.0), (process.terminate, 3.0), (process.kill, 3.0)):
        if send is not None:
            with contextlib.suppress(OSError):
                send()
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def start_engine_process(options: ModelOptions, progress: Progress) -> EngineProcess:
    """Start `llmtui serve` for ``options`` as a child and wait until its model is loaded.

    Progress comes from the engine's /health while it loads; a failed load raises ModelLoadError with the
    engine's own one-line message.
    """
    directory = Path(tempfile.mkdtemp(prefix="llmtui-engine-", dir=runtime_base()))  # 0700
    socket_path = directory / "engine.sock"
    log = directory / "engine.log"
    command = [sys.executable, "-m", "llmtui", "serve", *options.to_args(), "--uds", str(socket_path)]
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [*command, "--watch-stdin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
            # The engine's socket is private (0700): it needs no key, and must not demand one that a user
            # exported for a server of their own (its client here sends none).
            env={k: v for k, v in os.environ.items() if k != API_KEY_ENV},
        )
    progress(0.0, "starting the engine process")
    try:
        wait_until_ready(process, socket_path, log, progress)
        return EngineProcess(process, directory)
    except BaseException:
        stop(process)
        shutil.rmtree(directory, ignore_errors=True)
        raise


def wait_until_ready(process: subprocess.Popen[bytes], socket_path: Path, log: Path, progress: Progress) -> None:
    """Poll the engine's /health until it answers 200; ModelLoadError if the process ends first."""
    transport = httpx.HTTPTransport(uds=str(socket_path))
    with httpx.Client(transport=transport, base_url="http://llmtui", timeout=5.0) as client:
        while True:
            if process.poll() is not None:
                reason = last_error(log) or describe_exit(process, log)
                raise ModelLoadError(reason)
            try:
                response = client.get("/health")
            except httpx.TransportError:  # not listening yet
                time.sleep(POLL_SECONDS)
                continue
            if response.status_code == 200:
                return
            with contextlib.suppress(ValueError, AttributeError):
                body = response.json()
                progress(float(body.get("progress", 0.0)), str(body.get("detail", "loading")))
            time.sleep(POLL_SECONDS)
