"""How a run computes, decided in one place: precision, parallelism, autocast, loss scaling and the optimizer.

`choose_numerics(method, world_size, precision, device_type)` is the whole decision. train.py calls it with the
job's values, bench.py with one GPU's, and the tests with a V100 job's, an A100/H100 job's and a CPU run's, and
each runs what it returns (the tests on the CPU, which runs every combination a GPU job gets):

- `full` over several processes: FSDP2. fp32 master weights, gradients and Adam states, sharded; FSDP casts the
  gathered weights to the precision (so no autocast) and reduce-scatters the gradients in fp32. In one process:
  fp32 master weights and the forward under autocast.
- `lora`: the frozen base loaded in the precision, fp32 adapters, the forward under autocast; DDP over several
  processes.
- fp16 (V100, no bf16): loss scaling with `torch.amp.GradScaler`, under FSDP2 too. `ShardedGradScaler` makes its
  inf flag with shape (1,), and the fused AdamW step subtracts that flag from its ()-shaped step counters: `output
  with shape [] doesn't match the broadcast shape [1]` at the first step (torch 2.6.0 to 2.13.0). GradScaler's flag
  has shape (), and on FSDP2's DTensor gradients the unscale op reduces it over the ranks itself (DTensor's
  `found_inf_reduce_handler`; PyTorch tests FSDP2 with this GradScaler, test_fully_shard_grad_scaler.py).
- AdamW is fused wherever torch has that kernel (CUDA, and the CPU from torch 2.4), so a CPU run steps with the
  optimizer code a GPU job steps with.
- FSDP2 averages gradients with ReduceOp.AVG; gloo (the CPU backend) sums them under torch 2.8.0 (2-rank
  gradients exactly 2x the 1-process ones, measured; torch 2.13.0 averages). On the CPU FSDP2 is therefore told
  to sum and divide by the world size itself (`set_force_sum_reduction_for_comms`), which is NCCL's average.
"""

from dataclasses import dataclass
from typing import Literal

import torch

PRECISIONS = (torch.float32, torch.float16, torch.bfloat16)
# Devices with a fused AdamW kernel in the pinned torch releases (the CPU one exists from torch 2.4 on).
FUSED_ADAMW_DEVICES = ("cuda", "cpu")
# Device types whose process-group backend's average FSDP2 cannot trust: "cpu" stands for gloo, the backend
# finetune.init_distributed gives CPU runs (see the module docstring).
SUM_THEN_DIVIDE_DEVICES = ("cpu",)


@dataclass(frozen=True)
class Numerics:
    precision: torch.dtype  # the compute precision
    load_dtype: torch.dtype  # the model as loaded: fp32 master weights (full) or the frozen base (lora)
    parallelism: Literal["single", "fsdp", "ddp"]
    autocast_dtype: torch.dtype | None  # None: no autocast (fp32, or FSDP2 casting the weights itself)
    loss_scaling: bool  # fp16: scale the loss, skip a step whose gradients overflowed
    fused_adamw: bool
    sum_then_divide: bool  # FSDP2 reduces by a sum and a division instead of the backend's average


def choose_numerics(method: str, world_size: int, precision: torch.dtype, device_type: str) -> Numerics:
    """The numerics of a run of `method` over `world_size` processes computing in `precision` on `device_type`."""
    if method not in ("full", "lora"):
        raise ValueError(f"--method: expected full or lora, got {method!r}")
    if world_size < 1:
        raise ValueError(f"world size: expected an integer >= 1, got {world_size}")
    if precision not in PRECISIONS:
        raise ValueError(f"--precision: expected float32, float16 or bfloat16, got {precision}")
    parallelism: Literal["single", "fsdp", "ddp"] = "single"
    if world_size > 1:
        parallelism = "fsdp" if method == "full" else "ddp"
    lower = precision != torch.float32
    return Numerics(
        precision=precision,
        load_dtype=torch.float32 if method == "full" else precision,
        parallelism=parallelism,
        autocast_dtype=precision if lower and parallelism != "fsdp" else None,
        loss_scaling=precision == torch.float16,
        fused_adamw=device_type in FUSED_ADAMW_DEVICES,
        sum_then_divide=parallelism == "fsdp" and device_type in SUM_THEN_DIVIDE_DEVICES,
    )


def grad_scaler(numerics: Numerics, device_type: str) -> torch.amp.GradScaler:
    """The loss scaler (a no-op unless fp16); the same class with and without FSDP2 (see the module docstring)."""
    return torch.amp.GradScaler(device_type, enabled=numerics.loss_scaling)


def build_optimizer(
    params: list[torch.nn.Parameter], learning_rate: float, weight_decay: float, numerics: Numerics
) -> torch.optim.AdamW:
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},  # biases and norms
    ]
    return torch.optim.AdamW(
        [group for group in groups if group["params"]], lr=learning_rate, fused=numerics.fused_adamw
    )


def describe(numerics: Numerics) -> str:
    """One log line: what this run computes with."""
    name = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
    parts = [
        f"{name[numerics.precision]} compute",
        {"single": "one process", "fsdp": "FSDP2", "ddp": "DDP"}[numerics.parallelism],
    ]
    if numerics.sum_then_divide:
        parts[-1] += " (gradients summed, then divided by the world size)"
    if numerics.autocast_dtype is not None:
        parts.append(f"autocast {name[numerics.autocast_dtype]}")
    parts.append("loss scaling" if numerics.loss_scaling else "no loss scaling")
    parts.append("fused AdamW" if numerics.fused_adamw else "AdamW")
    return "numerics: " + ", ".join(parts)
