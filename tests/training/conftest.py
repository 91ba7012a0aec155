"""Fixtures for the training script's CPU tests: real prep output and a tiny GPT-J saved like a Hub model."""

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

# psutil comes with accelerate, a training requirement, in both test environments.
import psutil
import pytest

from fakes.tiny_gptj import make_tiny_model

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TRAINING = ROOT / "training"
# train.py runs with training/ as its import root (SageMaker's source_dir); the tests import its modules the same way.
sys.path.insert(0, str(TRAINING))

BLOCK_SIZE = 32


def pins(path: Path) -> dict[str, str]:
    """The `name==version` lines of a requirements or constraints file."""
    return dict(re.findall(r"^([\w.-]+)==(\S+)$", path.read_text(), re.MULTILINE))


@dataclass(frozen=True)
class TextChannels:
    train: Path
    validation: Path


def prepare_text(directory: Path, documents: int = 16) -> TextChannels:
    """The dataset prep's real output (train.txt, validation.txt) from a synthetic archive."""
    from fakes.archive import build_synthetic_archive
    from lambdas.dataset_prep import LocalDirSink, PrepConfig, prepare

    archive = build_synthetic_archive(directory / "dataset.zip", uk_train_docs=documents, uk_test_docs=2)
    manifest = prepare(
        archive.path, LocalDirSink(directory / "out"), PrepConfig(doc_count=documents, validation="summaries")
    )
    return TextChannels(
        train=(directory / "out" / manifest.train.key).parent,
        validation=(directory / "out" / manifest.validation_output.key).parent,
    )


@pytest.fixture(scope="session")
def text(tmp_path_factory: pytest.TempPathFactory) -> TextChannels:
    return prepare_text(tmp_path_factory.mktemp("prep"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, text: TextChannels) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-gptj"), sorted(text.train.glob("*.txt")))


def script_env(root: Path, text: TextChannels, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The SageMaker environment of a job, pointing at local folders under root; no network."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SM_", "RANK", "LOCAL_RANK", "WORLD_SIZE", "TRAINING_JOB_NAME"))
    }
    env.update(
        SM_CHANNEL_TRAIN=str(text.train),
        SM_CHANNEL_VALIDATION=str(text.validation),
        SM_MODEL_DIR=str(root / "model"),
        SM_OUTPUT_DATA_DIR=str(root / "output"),
        SM_NUM_GPUS="0",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Run:
    """A finished train.py run: its folders and everything it printed."""

    root: Path
    returncode: int
    output: str

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def metrics(self) -> dict[str, Any]:
        return cast(dict[str, Any], json.loads((self.root / "output" / "metrics.json").read_text()))


TIMEOUT = 600  # generous: the machine may be shared with other test runs


class Launched:
    """A subprocess started in the background and collected later, so that the slow runs overlap with each other
    and with the in-process tests. after: start only once that run has finished."""

    def __init__(self, root: Path, command: list[str], env: Mapping[str, str], after: "Launched | None" = None) -> None:
        self.root = root
        self.process: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._run, args=(command, env, after), daemon=True)
        self.thread.start()

    def _run(self, command: list[str], env: Mapping[str, str], after: "Launched | None") -> None:
        if after is not None:
            after.thread.join()
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
        self.process.wait()

    def kill(self) -> None:
        """SIGKILL the run and every process it started. torchrun starts each worker in a session of its own, which a
        signal to the launcher's process group misses: its workers would then wait for their peers for an hour."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            launcher = psutil.Process(self.process.pid)
            family = [launcher, *launcher.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for member in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()

    def result(self) -> Run:
        self.thread.join(timeout=TIMEOUT)
        if self.thread.is_alive():
            self.kill()
            self.thread.join()
        assert self.process is not None
        return Run(self.root, self.process.returncode, "".join(self.lines))


def train_command(root: Path, model: Path, *args: str, script: Path = TRAINING / "train.py") -> list[str]:
    return [
        sys.executable,
        str(script),
        *("--model_name_or_path", str(model), "--checkpoint_dir", str(root / "checkpoints")),
        *("--block_size", str(BLOCK_SIZE), "--logging_steps", "1", "--seed", "7", *args),
    ]


def launch_train(
    root: Path, text: TextChannels, model: Path, *args: str, env: Mapping[str, str] | None = None
) -> Launched:
    return Launched(root, train_command(root, model, *args), script_env(root, text, env))


# The full fine-tuning run that the end-to-end tests share: 24 steps of 2 blocks each.
FULL_ARGS = (
    *("--method", "full", "--max_steps", "24", "--learning_rate", "3e-3", "--warmup_ratio", "0.1"),
    *("--checkpoint_every_steps", "4", "--eval_every_steps", "12"),
)
# train.py's speed options (what bench.py measures): compiled blocks, every 2nd block recomputed, cuDNN attention
# first (passed over on the CPU); no checkpoints written.
SPEED_ARGS = (
    *("--compile_blocks", "True", "--gradient_checkpointing_every", "2", "--cudnn_attention_first", "True"),
    *("--checkpoint_every_steps", "0"),
)
# The default job's numerics (ml.p3dn.24xlarge: V100s, so fp16 with loss scaling; FSDP2), as 2 ranks on the CPU.
V100_ARGS = (
    *("--method", "full", "--max_steps", "24", "--learning_rate", "3e-3", "--warmup_ratio", "0.1"),
    *("--precision", "fp16", "--per_device_train_batch_size", "1", "--checkpoint_every_steps", "0"),
)
LORA_ARGS = (
    *("--method", "lora", "--lora_r", "4", "--lora_alpha", "8", "--learning_rate", "2e-2", "--max_steps", "8"),
    *("--per_device_train_batch_size", "1", "--checkpoint_every_steps", "8"),
)


@pytest.fixture(scope="session")
def launches(
    tmp_path_factory: pytest.TempPathFactory, text: TextChannels, tiny_model: Path
) -> Iterator[dict[str, Launched]]:
    """Every slow subprocess, started at once (the resumption as soon as the killed run is gone)."""
    names = ("full", "killed", "lora", "compiled", "v100", "numerics")
    full, killed, lora, compiled, v100, numerics = (tmp_path_factory.mktemp(name) for name in names)
    interrupted = train_command(
        killed, tiny_model, *FULL_ARGS, "--per_device_train_batch_size", "2", script=HERE / "interrupt.py"
    )
    launched = {
        "full": launch_train(full, text, tiny_model, *FULL_ARGS, "--per_device_train_batch_size", "2"),
        # A spot interruption of a single-process run with 2 blocks per micro-batch, mid-way through a checkpoint...
        "killed": Launched(killed, interrupted, script_env(killed, text)),
        "lora": launch_train(lora, text, tiny_model, *LORA_ARGS),
        "v100": launch_train(v100, text, tiny_model, *V100_ARGS, env={"SM_NUM_GPUS": "2"}),
        # A few steps of every method and precision as 2 ranks (FSDP2 or DDP), the project's numerics as they are.
        "numerics": Launched(
            numerics,
            [
                *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"),
                *(str(HERE / "numerics_run.py"), "--model", str(tiny_model), "--train", str(text.train)),
                *("--out", str(numerics / "runs.pt"), *NUMERICS_RUNS),
            ],
            script_env(numerics, text),
        ),
    }
    # ...resumed in the same folders by 2 FSDP ranks (gloo) with 1 block each: the same 2 blocks per step.
    launched["resumed"] = Launched(
        killed,
        train_command(killed, tiny_model, *FULL_ARGS, "--per_device_train_batch_size", "1"),
        script_env(killed, text, {"SM_NUM_GPUS": "2"}),
        after=launched["killed"],
    )
    # The full run again with the speed options, as 2 FSDP ranks with 1 block each (the same 2 blocks per step).
    launched["compiled"] = Launched(
        compiled,
        train_command(compiled, tiny_model, *FULL_ARGS, "--per_device_train_batch_size", "1", *SPEED_ARGS),
        script_env(compiled, text, {"SM_NUM_GPUS": "2"}),
    )
    yield launched
    for run in launched.values():  # only still running when a test failed before collecting it
        run.kill()


@pytest.fixture(scope="session", autouse=True)
def _start_slow_runs_first(request: pytest.FixtureRequest) -> None:
    """Start the subprocesses before the first test when any collected test uses them."""
    import torch

    torch.set_num_threads(1)  # one core each for this process and the runs: threads fighting over 2 cores is slower
    if any("launches" in getattr(item, "fixturenames", ()) for item in request.session.items):
        request.getfixturevalue("launches")


# method:precision of the numerics runs (tests/training/numerics_run.py), each in one process and as 2 ranks.
NUMERICS_RUNS = tuple(f"{method}:{precision}" for method in ("full", "lora") for precision in ("fp32", "fp16", "bf16"))


@pytest.fixture(scope="session")
def full_run(launches: dict[str, Launched]) -> Run:
    run = launches["full"].result()
    assert run.returncode == 0, run.output
    return run
