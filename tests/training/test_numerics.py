"""The numerics a job gets (numerics.choose_numerics), and those numerics run on the CPU: in one process and as 2
ranks (FSDP2 for full fine-tuning, DDP for LoRA; tests/training/numerics_run.py), fp16 with loss scaling as a V100
job, bf16 as an A100/H100 job, fp32 as a CPU run."""

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from finetune import Distributed
from numerics import Numerics, choose_numerics

from tests.training import numerics_run
from tests.training.conftest import NUMERICS_RUNS, Launched, TextChannels

V100_JOB = ("full", 8, torch.float16, "cuda")  # the default job: ml.p3dn.24xlarge, 8x V100
A100_JOB = ("full", 8, torch.bfloat16, "cuda")  # ml.p4d.24xlarge; ml.p5 (H100) alike


def numerics(
    parallelism: str, precision: torch.dtype, load: torch.dtype, autocast: torch.dtype | None, sum_then_divide: bool
) -> Numerics:
    return Numerics(
        precision=precision,
        load_dtype=load,
        parallelism=parallelism,  # type: ignore[arg-type]
        autocast_dtype=autocast,
        loss_scaling=precision == torch.float16,
        fused_adamw=True,
        sum_then_divide=sum_then_divide,
    )


fp32, fp16, bf16 = torch.float32, torch.float16, torch.bfloat16


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        (V100_JOB, numerics("fsdp", fp16, fp32, None, False)),
        (A100_JOB, numerics("fsdp", bf16, fp32, None, False)),
        (("lora", 8, fp16, "cuda"), numerics("ddp", fp16, fp16, fp16, False)),
        (("lora", 8, bf16, "cuda"), numerics("ddp", bf16, bf16, bf16, False)),
        (("full", 1, fp16, "cuda"), numerics("single", fp16, fp32, fp16, False)),  # e.g. ml.p3.2xlarge
        (("lora", 1, bf16, "cuda"), numerics("single", bf16, bf16, bf16, False)),
        (("full", 1, fp32, "cpu"), numerics("single", fp32, fp32, None, False)),  # a CPU run, as in make rehearse
        (("full", 2, fp32, "cpu"), numerics("fsdp", fp32, fp32, None, True)),
        (("lora", 2, fp32, "cpu"), numerics("ddp", fp32, fp32, None, False)),
    ],
)
def test_each_job_gets_its_numerics(job: tuple[str, int, torch.dtype, str], expected: Numerics) -> None:
    assert choose_numerics(*job) == expected


@pytest.mark.parametrize("method", ["full", "lora"])
@pytest.mark.parametrize("precision", [fp16, bf16])
@pytest.mark.parametrize(("cpu_processes", "gpus"), [(1, 1), (2, 8)])
def test_the_cpu_runs_the_combination_a_gpu_job_gets(
    method: str, precision: torch.dtype, cpu_processes: int, gpus: int
) -> None:
    """Everything but the reduction's arithmetic (gloo's average is summed and divided instead) is the GPU job's."""
    gpu = choose_numerics(method, gpus, precision, "cuda")
    cpu = choose_numerics(method, cpu_processes, precision, "cpu")
    assert cpu.fused_adamw and cpu.loss_scaling == (precision == fp16)
    assert {**vars(cpu), "sum_then_divide": False} == vars(gpu)


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (("adapters", 1, fp32, "cpu"), "--method: expected full or lora, got 'adapters'"),
        (("full", 0, fp32, "cpu"), "world size: expected an integer >= 1, got 0"),
        (("full", 1, torch.float64, "cpu"), "--precision: expected float32, float16 or bfloat16, got torch.float64"),
    ],
)
def test_bad_values_are_named(job: tuple[str, int, torch.dtype, str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        choose_numerics(*job)


@pytest.fixture(scope="module")
def one_process(tiny_model: Path, text: TextChannels) -> dict[str, dict[str, Any]]:
    """Every method and precision in this process, with the numerics one GPU would get."""
    env = Distributed(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
    runs = {}
    for name in NUMERICS_RUNS:
        method, precision = name.split(":")
        runs[name] = numerics_run.run(tiny_model, text.train, method, precision, env)
    return runs


@pytest.fixture(scope="module")
def two_ranks(launches: dict[str, Launched]) -> dict[str, dict[str, Any]]:
    run = launches["numerics"].result()
    assert run.returncode == 0, run.output
    runs = dict(torch.load(run.root / "runs.pt", weights_only=True))
    assert {record["world_size"] for record in runs.values()} == {2}
    return runs


@pytest.fixture(params=["one process", "two ranks"])
def runs(request: pytest.FixtureRequest) -> dict[str, dict[str, Any]]:
    return dict(request.getfixturevalue(request.param.replace(" ", "_")))


# What the model trained as, by method and process count: the 2-rank runs are FSDP2's and DDP's, not one process's.
WRAPPERS = {
    ("full", 1): "GPTJForCausalLM",
    ("lora", 1): "PeftModelForCausalLM",
    ("full", 2): "FSDP2",
    ("lora", 2): "DistributedDataParallel",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", NUMERICS_RUNS)
def test_every_run_steps_with_the_fused_optimizer_and_its_loss_falls(
    runs: dict[str, dict[str, Any]], name: str
) -> None:
    run = runs[name]
    ranks = run["world_size"]
    assert run["wrapper"] == WRAPPERS[name.split(":")[0], ranks]
    assert run["fused_optimizer"] and run["numerics"]["scaler"] == "GradScaler"
    assert run["numerics"]["scaler_enabled"] is name.endswith(":fp16")  # loss scaling in fp16 only
    losses = [step["loss"] for step in run["steps"]]
    assert sum(losses[-2:]) / 2 < losses[0] - (0.2 if name.startswith("lora") else 1.0), losses
    trained = [step for step in run["steps"] if not step["forced_overflow"]]
    assert all(step["weights_changed"] == [True] * ranks and step["grad_norm"] is not None for step in trained)
    assert [step["adam_step"] for step in trained] == [[float(n)] * ranks for n in range(1, len(trained) + 1)]


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name in NUMERICS_RUNS if name.endswith("fp16")])
def test_an_overflowing_fp16_step_is_skipped_and_the_next_one_trains(
    runs: dict[str, dict[str, Any]], name: str
) -> None:
    """The V100 path: inf in the last rank's gradients only skips the step on every rank. Under FSDP2 the inf is put
    into one element of that rank's gradient shard after the reduce-scatter, so the other rank skips only because the
    scaler reduces its inf flag over the ranks (numerics_run.py's stand-in)."""
    steps, ranks = runs[name]["steps"], runs[name]["world_size"]
    overflow = numerics_run.OVERFLOW_STEP - 1
    before, skipped, after = steps[overflow - 1], steps[overflow], steps[overflow + 1]
    assert skipped["forced_overflow"] and skipped["grad_norm"] is None  # non-finite, so left out
    assert skipped["weights_changed"] == [False] * ranks
    assert skipped["adam_step"] == before["adam_step"]
    assert skipped["scale_after"] == [scale / 2 for scale in skipped["scale_before"]]
    assert after["weights_changed"] == [True] * ranks
    assert after["adam_step"] == [step + 1 for step in before["adam_step"]]
    assert after["scale_before"] == skipped["scale_after"]
    assert after["loss"] == pytest.approx(skipped["loss"], abs=1e-6)  # same blocks, same weights: nothing changed


# Relative difference allowed between a tensor's 1-process and 2-rank gradient: the lower precisions round at
# different places (autocast in one process; FSDP2's cast weights, or DDP's bucketed reduction, over two). Measured
# (the tiny GPT-J, every tensor): at most 2e-7 in fp32, 1.4e-3 in fp16, 1.2e-2 in bf16.
GRADIENT_TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 5e-2}


def gradient_mismatches(
    reference: dict[str, torch.Tensor], reduced: dict[str, torch.Tensor], tolerance: float
) -> list[str]:
    """The tensors whose reduced gradient differs from the reference by more than `tolerance` of the reference's
    norm, each tensor on its own: a small tensor (a q/k projection holds 0.2 % of the norm) counts as much as a large
    one. A zero reference (LoRA's A matrices before B has trained) must stay exactly zero."""
    assert reference and reference.keys() == reduced.keys()
    return [
        f"{name}: {float((reduced[name] - ref).norm()):.3g} off, norm {float(ref.norm()):.3g}"
        for name, ref in reference.items()
        if not (reduced[name] - ref).norm() <= tolerance * ref.norm()
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name", NUMERICS_RUNS)
def test_two_ranks_compute_the_gradient_of_one_process(
    one_process: dict[str, dict[str, Any]], two_ranks: dict[str, dict[str, Any]], name: str
) -> None:
    """Both train on the same 2 blocks (one each on 2 ranks), so the reduced gradient must be the 1-process one, tensor
    by tensor: a reduction that sums without dividing (gloo's under FSDP2, torch 2.8) doubles it. Loss-after-Adam
    comparisons cannot see that (Adam divides the scale away); the unclipped gradients before the first update can."""
    tolerance = GRADIENT_TOLERANCE[name.split(":")[1]]
    assert gradient_mismatches(one_process[name]["gradients"], two_ranks[name]["gradients"], tolerance) == []
    norms = [run[name]["steps"][0]["grad_norm"] for run in (one_process, two_ranks)]
    assert math.isclose(*norms, rel_tol=tolerance)


@pytest.mark.slow
@pytest.mark.parametrize("name", NUMERICS_RUNS)
def test_a_doubled_gradient_in_the_smallest_tensor_is_a_mismatch(
    one_process: dict[str, dict[str, Any]], two_ranks: dict[str, dict[str, Any]], name: str
) -> None:
    """The comparison above sees a 2x error in one small tensor, which one norm over all gradients misses."""
    reference, reduced = one_process[name]["gradients"], dict(two_ranks[name]["gradients"])
    smallest = min((key for key in reference if reference[key].norm() > 0), key=lambda key: reference[key].norm())
    total = torch.cat([g.flatten() for g in reference.values()]).norm()
    assert reference[smallest].norm() < 0.01 * total  # small enough that a norm over everything would not see it
    reduced[smallest] = 2 * reduced[smallest]
    tolerance = GRADIENT_TOLERANCE[name.split(":")[1]]
    assert [line.split(":")[0] for line in gradient_mismatches(reference, reduced, tolerance)] == [smallest]
