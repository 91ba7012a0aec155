"""The runner the slow tests start their subprocesses with (conftest.Launched)."""

import os
import re
import sys
import time
from pathlib import Path

import psutil

from tests.training.conftest import Launched

# One write(2) per line: two workers share the pipe, and print() under PYTHONUNBUFFERED writes the text and its
# newline separately, so their lines interleaved ("worker 13704worker 13705").
WORKER = """
import os, time
os.write(1, f"worker {os.getpid()}\\n".encode())
time.sleep(600)
"""


def test_killing_a_torchrun_run_ends_its_workers_too(tmp_path: Path) -> None:
    """torchrun starts each worker in a session of its own: killing the launcher's process group left them waiting."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    run = Launched(tmp_path, command, {**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(worker_pids(run)) < 2:
        time.sleep(0.1)
    workers = worker_pids(run)
    assert len(workers) == 2, "".join(run.lines)
    run.kill()
    run.thread.join(timeout=60)
    deadline = time.monotonic() + 10  # SIGKILL is delivered at once; the reaping of an orphan may take a moment
    while time.monotonic() < deadline and any(map(running, workers)):
        time.sleep(0.1)
    assert [pid for pid in workers if running(pid)] == []


def worker_pids(run: Launched) -> list[int]:
    return [int(pid) for pid in re.findall(r"^worker (\d+)$", "".join(run.lines), re.MULTILINE)]


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
