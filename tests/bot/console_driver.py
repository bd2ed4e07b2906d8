"""Drive ``loandesk console`` as a newcomer would: a subprocess whose stdin a script types into, whose stdout is
read line by line. The subprocess runs with a ``sitecustomize`` that refuses every connection and name lookup
that is not 127.0.0.1 / localhost and reports it on stderr, so a test proves the console needs no network."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

NO_NETWORK = '''
import socket, sys

_LOCAL = ("127.0.0.1", "::1", "localhost")


def _refuse(what):
    sys.stderr.write(f"NETWORK ATTEMPT: {what}\\n")
    sys.stderr.flush()
    raise OSError(101, f"no network in this test: {what}")


def _check(address):
    if isinstance(address, tuple) and address and address[0] not in _LOCAL:
        _refuse(address)


_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def connect(self, address):
    _check(address)
    return _connect(self, address)


def connect_ex(self, address):
    _check(address)
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if host not in (None, *_LOCAL) and not str(host).startswith("127."):
        _refuse(host)
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
'''


class Console:
    """A running ``loandesk console``; ``type`` a line, ``expect`` text to appear."""

    def __init__(self, tmp: Path, *flags: str) -> None:
        guard = tmp / "nonet"
        guard.mkdir(exist_ok=True)
        (guard / "sitecustomize.py").write_text(NO_NETWORK, encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(guard), os.environ.get("PYTHONPATH", "")]),
               "PYTHONUNBUFFERED": "1"}
        env = {k: v for k, v in env.items() if not k.startswith("LOANDESK_") and k != "TELEGRAM_BOT_TOKEN"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.entry.cli", "console", "--db", str(tmp / "console.db"), *flags],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
            env=env, cwd=tmp)
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._cond = threading.Condition()
        self.cursor = 0
        for stream, into in ((self.proc.stdout, self.lines), (self.proc.stderr, self.errors)):
            threading.Thread(target=self._pump, args=(stream, into), daemon=True).start()

    def _pump(self, stream: object, into: list[str]) -> None:
        for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
            with self._cond:
                into.append(line.rstrip("\n"))
                self._cond.notify_all()

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, text: str, timeout: float = 45.0) -> str:
        """Wait for a line containing ``text`` after the last one matched; returns everything up to it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(self.cursor, len(self.lines)):
                    if text in self.lines[i]:
                        seen = "\n".join(self.lines[self.cursor:i + 1])
                        self.cursor = i + 1
                        return seen
                if self.proc.poll() is not None:  # exited: what it printed is drained within a moment
                    deadline = min(deadline, time.monotonic() + 1.0)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{text!r} did not appear; the console printed:\n" + self.transcript
                                         + "\nstderr:\n" + "\n".join(self.errors))
                self._cond.wait(min(left, 0.2))

    def say(self, line: str, until: str, timeout: float = 45.0) -> str:
        self.type(line)
        return self.expect(until, timeout)

    @property
    def transcript(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def close(self, timeout: float = 60.0) -> int:
        """End of input (Ctrl-D): the console stops; returns its exit code."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def transcript(tmp: Path, lines: str, *flags: str, timeout: float = 60.0) -> str:
    """Pipe a whole script in at once (as ``printf … | loandesk console`` does) and return what it printed."""
    done = subprocess.run([sys.executable, "-m", "bot.entry.cli", "console", "--db", str(tmp / "piped.db"), *flags],
                          input=lines, capture_output=True, text=True, timeout=timeout, check=True, cwd=tmp,
                          env={k: v for k, v in os.environ.items() if not k.startswith("LOANDESK_")})
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout
