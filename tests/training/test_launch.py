"""train.py's own torchrun launch, for jobs started without a launcher."""

import sys

import pytest
import train


@pytest.fixture
def execv(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    monkeypatch.setattr(train.os, "execv", lambda path, argv: calls.append(argv))
    monkeypatch.setattr(sys, "argv", ["train.py", "--method", "lora"])
    for name in ("LOCAL_RANK", "SM_HOSTS", "SM_CURRENT_HOST", "SM_NUM_GPUS"):
        monkeypatch.delenv(name, raising=False)
    return calls


def test_one_process_needs_no_launcher(execv: list[list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    train.relaunch_with_torchrun()
    monkeypatch.setenv("SM_HOSTS", '["algo-1"]')
    monkeypatch.setenv("SM_NUM_GPUS", "1")
    train.relaunch_with_torchrun()
    assert execv == []


def test_processes_under_torchrun_are_left_alone(execv: list[list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SM_NUM_GPUS", "8")
    monkeypatch.setenv("LOCAL_RANK", "3")
    train.relaunch_with_torchrun()
    assert execv == []


def test_one_host_with_several_gpus_runs_standalone(execv: list[list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SM_HOSTS", '["algo-1"]')
    monkeypatch.setenv("SM_NUM_GPUS", "8")
    train.relaunch_with_torchrun()
    [argv] = execv
    assert argv[1:6] == ["-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=8", "--standalone"]
    assert argv[6].endswith("train.py") and argv[7:] == ["--method", "lora"]


def test_several_hosts_meet_on_the_first(execv: list[list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SM_HOSTS", '["algo-1", "algo-2"]')
    monkeypatch.setenv("SM_CURRENT_HOST", "algo-2")
    monkeypatch.setenv("SM_NUM_GPUS", "8")
    train.relaunch_with_torchrun()
    [argv] = execv
    assert argv[3:5] == ["--nnodes=2", "--nproc_per_node=8"]
    assert argv[5:8] == ["--node_rank=1", "--master_addr=algo-1", "--master_port=29500"]
