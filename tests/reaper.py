"""Every process a test run starts dies with the run, even when the run is killed.

Tests start servers in sessions of their own (so that one can be killed with
its workers), which a killed ``pytest`` would leave running. :func:`start`
marks the run: it puts :data:`MARK` with a fresh value into the environment,
which every process started afterwards inherits, and starts a watchdog in a
session of its own holding the read end of a pipe. When the run ends, however
it ends (SIGKILL included), the pipe closes; the watchdog then kills every
process whose environment carries the run's mark.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

__all__ = ["MARK", "start"]

MARK = "EVAULT_TEST_RUN"

_WATCHDOG = r"""
import os, signal, sys
mark = sys.argv[1].encode()
sys.stdin.buffer.read()  # returns when the test run's end of the pipe closes
me = os.getpid()
for _ in range(3):  # processes may fork while the first ones die
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            continue
        if mark in environ:
            try:
                os.kill(int(name), signal.SIGKILL)
            except OSError:
                pass
"""


def start() -> subprocess.Popen[bytes] | None:
    """Mark this run and start its watchdog (once per run; ``None`` if already marked).

    Only where ``/proc`` shows other processes' environments (Linux).
    """
    if os.environ.get(MARK) or not os.path.isdir("/proc/self"):
        return None
    value = secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != MARK}
    watchdog = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, f"{MARK}={value}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    # The write end stays open in this process (and nowhere else: it is not
    # inheritable) until the process ends.
    os.environ[MARK] = value
    return watchdog
