"""Helpers for tests of a live instance: start a real `ampel serve` (uvicorn on a free port of
127.0.0.1, in a process of its own), drop alert files for it, run ``ampel`` commands, wait."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Server", "ampel", "drop_alerts", "free_port", "wait_for"]


def drop_alerts(alerts: Path, folder: Path, copies: int = 1, pattern: str = "*.avro") -> int:
    """Copy the files of ``alerts`` matching ``pattern`` into ``folder`` (``copies`` times, in
    sub-folders ``nightNN``), dated a minute ago so a server takes them at once; how many files."""
    count = 0
    for copy in range(copies):
        target = folder / f"night{copy:02d}"
        for path in sorted(alerts.rglob(pattern)):
            destination = target / path.relative_to(alerts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
            os.utime(destination, (time.time() - 60, time.time() - 60))
            count += 1
    return count


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ampel(*arguments: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``ampel`` command in a process of its own."""
    done = subprocess.run([sys.executable, "-m", "ampel_core.cli", *arguments], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)
    if check and done.returncode != 0:
        raise AssertionError(f"ampel {' '.join(arguments)} exited {done.returncode}: {done.stderr}")
    return done


@dataclass
class Server:
    """A running `ampel serve`."""

    store: str
    watch: Path
    data_dir: Path
    url: str = ""
    process: subprocess.Popen[str] | None = None
    options: list[str] = field(default_factory=list)

    def start(self) -> Server:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ampel_core.cli", "serve", "--store", self.store, "--watch", str(self.watch),
             "--data-dir", str(self.data_dir), "--port", str(port), "--poll", "0.1", "--settle", "0.2", *self.options],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"ampel serve exited {self.process.returncode}: {self.process.stdout.read()}")  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(f"{self.url}/openapi.json", timeout=2):
                    return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError("ampel serve did not answer within 60 s")

    def stop(self, timeout: float = 120) -> tuple[int, str]:
        """SIGTERM, then wait: the exit status and everything it printed."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        output, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode, output


def wait_for(condition: Callable[[], object], timeout: float = 120, what: str = "condition") -> None:
    """Return once ``condition()`` is true; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
