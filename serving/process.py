"""A `callqa serve` process on a free loopback port, and stopping it with everything it started.

BentoML's process manager (circus) starts each worker in a session of its own, so signalling the server's process
group leaves the workers running, listening and holding the database. Stopping a server therefore means every
descendant, collected before the first signal (a killed parent's children are re-parented and cannot be found from it
afterwards). The test suite and the load benchmark both start servers through here.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(process: subprocess.Popen, base: str, log: Path, timeout: float = 120) -> None:
    """Return once ``base``/readyz answers 200; stop the server and raise with its log's tail if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    stop_tree(process)
    raise RuntimeError(f"server not ready in {timeout:.0f} s: {log.read_text(errors='replace')[-3000:]}")


def start_serve(bundle: str | Path, log: Path, *options: str, env: dict | None = None, cwd: Path | None = None,
                timeout: float = 120) -> tuple[subprocess.Popen, int]:
    """`callqa serve BUNDLE OPTIONS…` on a free loopback port, in a session of its own, ready to answer: (process,
    port). Its output goes to ``log``."""
    port = free_port()
    with open(log, "wb") as out:  # the child keeps its own handle
        process = subprocess.Popen([sys.executable, "-m", "callqa.cli", "serve", "--bundle", str(bundle), "--port",
                                    str(port), *options], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                   start_new_session=True)
    wait_ready(process, f"http://127.0.0.1:{port}", log, timeout)
    return process, port


def api_worker(process: subprocess.Popen) -> psutil.Process:
    """The worker process of a `callqa serve` that answers HTTP (BentoML names its service on the command line)."""
    for child in psutil.Process(process.pid).children(recursive=True):
        if "--service-name callqa " in " ".join(child.cmdline()) + " ":
            return child
    raise RuntimeError("no API worker found")


def stop_tree(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    """Send ``sig`` to the process and all its descendants at once; whatever outlives ``timeout`` is killed."""
    try:
        root = psutil.Process(process.pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    for p in tree:
        try:
            p.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(tree, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
    try:
        process.wait(timeout=5)  # reap our own child
    except subprocess.TimeoutExpired:
        pass
