"""A few optimizer steps with the numerics a job gets, on the tiny GPT-J, recording what the numerics tests check.

Real: everything train.py runs for a step: its setup, finetune.set_up (numerics.choose_numerics for the method, world
size, precision and device; finetune.load_model / prepare_model, FSDP2 or DDP over gloo when launched as several
ranks; numerics.py's optimizer and loss scaler; the forward context), and finetune.train_step. Stand-in: the forced
overflow, on the last rank only. Under FSDP2 (and in one process) one element of that rank's gradient, after backward
and the reduce-scatter and before the scaler's unscale_ (a wrapper around `scaler.unscale_`), becomes inf: what an
overflow in a few elements leaves after the reduce-scatter, which hands each element to one rank's shard, so the
other rank's gradients are finite and only the scaler's cross-rank reduction of its inf flag makes it skip the step
too. Under DDP, whose all-reduce gives every rank the same gradients, the inf goes in before that reduction: a
gradient hook fills the first block's output gradient with inf (what an fp16 overflow in backward does there).
Every step trains the same two blocks of the prep's text (split over the ranks), so the loss falls within a few steps.
Each rank's view of a step (weights changed, Adam step count, loss scale) is recorded, so ranks that disagree show.

In process: `run(...)`. As ranks: `python -m torch.distributed.run --standalone --nproc_per_node 2 numerics_run.py
--model DIR --train DIR --out FILE full:fp16 lora:bf16 ...` (rank 0 writes every run's record with torch.save).
"""

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

TRAINING = Path(__file__).resolve().parents[2] / "training"
if str(TRAINING) not in sys.path:
    sys.path.insert(0, str(TRAINING))

import finetune  # noqa: E402
from arguments import FinetuneArguments, ModelArguments  # noqa: E402
from data import tokenize_and_pack  # noqa: E402
from speedups import gptj_blocks  # noqa: E402
from torch.distributed.fsdp import FSDPModule  # noqa: E402
from torch.distributed.tensor import DTensor  # noqa: E402

LEARNING_RATES = {"full": 3e-3, "lora": 5e-2}
STEPS = 8
OVERFLOW_STEP = 3  # 1-based; only runs with loss scaling get one
BLOCK_SIZE = 32
BLOCKS_PER_STEP = 2
# No clipping: the recorded gradients are the reduced ones as they are, so a wrong reduction scale shows.
NO_CLIPPING = 1e9


def _full(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def _local(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _every_rank(value: Any, env: finetune.Distributed) -> list[Any]:
    """Each rank's value, in rank order, on every rank."""
    if env.world_size == 1:
        return [value]
    values: list[Any] = [None] * env.world_size
    dist.all_gather_object(values, value)
    return values


def _poison_block_output_once(model: torch.nn.Module) -> Callable[[bool], None]:
    """A switch that makes the next backward write inf into the first block's output gradient (before DDP's
    all-reduce, which spreads it to every rank)."""
    armed = [False]

    def hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
        hidden = output[0] if isinstance(output, tuple) else output
        if armed[0] and hidden.requires_grad:
            armed[0] = False
            hidden.register_hook(lambda grad: torch.full_like(grad, math.inf))

    gptj_blocks(model)[0].register_forward_hook(hook)
    return lambda on: armed.__setitem__(0, on)


def _poison_gradient_once(scaler: torch.amp.GradScaler, params: list[torch.nn.Parameter]) -> Callable[[bool], None]:
    """A switch that makes the next `scaler.unscale_` find inf in one element of this rank's (local shard of the)
    reduced gradient: after the reduction, so no other rank's gradient has it."""
    armed = [False]
    unscale_ = scaler.unscale_

    def poisoned_unscale_(optimizer: torch.optim.Optimizer) -> None:
        if armed[0]:
            armed[0] = False
            local = next(g for g in (_local(p.grad) for p in params if p.grad is not None) if g.numel())
            local.view(-1)[0] = math.inf
        unscale_(optimizer)

    scaler.unscale_ = poisoned_unscale_  # type: ignore[method-assign]
    return lambda on: armed.__setitem__(0, on)


def run(model_dir: Path, train_dir: Path, method: str, precision: str, env: finetune.Distributed) -> dict[str, Any]:
    """STEPS steps of `method` in `precision` over env's ranks; every rank returns the same record."""
    args = FinetuneArguments(
        method=method, precision=precision, lora_r=4, lora_alpha=8, learning_rate=LEARNING_RATES[method]
    )
    torch.manual_seed(0)
    setup = finetune.set_up(ModelArguments(model_name_or_path=str(model_dir)), args, env)
    model, params, numerics = setup.model, setup.params, setup.numerics
    optimizer, scaler, forward = setup.stepping
    named = [(name.removeprefix("module."), p) for name, p in model.named_parameters() if p.requires_grad]
    assert [id(p) for _, p in named] == [id(p) for p in params]  # the same parameters, named
    blocks = tokenize_and_pack(train_dir, setup.tokenizer, BLOCK_SIZE)[:BLOCKS_PER_STEP]
    local_blocks = blocks.chunk(env.world_size)[env.rank]

    gradients: dict[str, torch.Tensor] = {}

    def record_first_gradients(*_: object) -> None:  # unscaled, before the first update
        if not gradients:
            gradients.update({name: _full(p.grad).detach().float().clone() for name, p in named if p.grad is not None})

    optimizer.register_step_pre_hook(record_first_gradients)
    if numerics.parallelism == "ddp":
        poison = _poison_block_output_once(finetune.unwrap(model))
    else:
        poison = _poison_gradient_once(scaler, params)
    steps = []
    for step in range(1, STEPS + 1):
        overflow = numerics.loss_scaling and step == OVERFLOW_STEP
        poison(overflow and env.rank == env.world_size - 1)
        before = [_local(p).detach().clone() for p in params]
        scale_before = scaler.get_scale()
        loss, grad_norm = finetune.train_step(
            model, [local_blocks], optimizer, scaler, params, NO_CLIPPING, forward, env
        )
        changed = any(not torch.equal(old, _local(p).detach()) for old, p in zip(before, params, strict=True))
        adam_step = optimizer.state[params[0]].get("step") if params[0] in optimizer.state else None
        steps.append(
            {
                "step": step,
                "forced_overflow": overflow,
                "loss": loss,
                "grad_norm": _finite_or_none(grad_norm),
                # each rank's, in rank order
                "scale_before": _every_rank(scale_before, env),
                "scale_after": _every_rank(scaler.get_scale(), env),
                "weights_changed": _every_rank(changed, env),
                "adam_step": _every_rank(None if adam_step is None else float(_full(adam_step)), env),
            }
        )
    return {
        "world_size": env.world_size,
        # What the model, scaler and optimizer are, read from them, not from the numerics that chose them.
        "wrapper": "FSDP2" if isinstance(model, FSDPModule) else type(model).__name__,
        "numerics": {"scaler": type(scaler).__name__, "scaler_enabled": scaler.is_enabled()},
        "fused_optimizer": all(group.get("fused") for group in optimizer.param_groups),
        "steps": steps,
        "gradients": gradients,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("runs", nargs="+", help="method:precision, e.g. full:fp16")
    args = parser.parse_args()
    env = finetune.init_distributed()
    results = {}
    for name in args.runs:
        method, precision = name.split(":")
        results[name] = run(args.model, args.train, method, precision, env)
    if env.is_main:
        torch.save(results, args.out)
    # As train.py ends: a plain exit after gloo collectives aborts about 1 run in 10 (leave_process_group says why).
    finetune.leave_process_group(env)


if __name__ == "__main__":
    main()
