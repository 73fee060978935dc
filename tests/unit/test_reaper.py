"""The processes a killed test run started die with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests import reaper

_RUN = """
import subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from tests import reaper
assert reaper.start() is not None
# A server-like child in a session of its own, and its own child.
child = subprocess.Popen(
    ["sh", "-c", "sleep 300 & echo $!; wait"], stdout=subprocess.PIPE, start_new_session=True
)
grandchild = int(child.stdout.readline())
print(child.pid, grandchild, flush=True)
time.sleep(300)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has ended too; only its parent has not looked yet.
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def test_a_killed_run_takes_its_servers_with_it() -> None:
    env = {k: v for k, v in os.environ.items() if k != reaper.MARK}
    run = subprocess.Popen(
        [sys.executable, "-c", _RUN, str(Path(__file__).resolve().parents[2])],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert run.stdout is not None
    pids = [int(p) for p in run.stdout.readline().split()]
    assert len(pids) == 2
    assert all(_alive(pid) for pid in pids)
    run.send_signal(signal.SIGKILL)
    run.wait()
    run.stdout.close()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)
