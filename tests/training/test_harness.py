"""The runner the slow tests start their subprocesses with (conftest.Launched)."""

import os
import sys
import time
from pathlib import Path

import psutil

from tests.training.conftest import Launched

WORKER = """
import os, sys, time
print(f"worker {os.getpid()}", flush=True)
time.sleep(600)
"""


def test_killing_a_torchrun_run_ends_its_workers_too(tmp_path: Path) -> None:
    """torchrun starts each worker in a session of its own: killing the launcher's process group left them waiting."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    run = Launched(tmp_path, command, {**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and sum(line.startswith("worker ") for line in run.lines) < 2:
        time.sleep(0.1)
    workers = [int(line.split()[1]) for line in run.lines if line.startswith("worker ")]
    assert len(workers) == 2, "".join(run.lines)
    run.kill()
    run.thread.join(timeout=60)
    deadline = time.monotonic() + 10  # SIGKILL is delivered at once; the reaping of an orphan may take a moment
    while time.monotonic() < deadline and any(map(running, workers)):
        time.sleep(0.1)
    assert [pid for pid in workers if running(pid)] == []


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
