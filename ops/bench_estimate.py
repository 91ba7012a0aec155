"""`make bench-estimate BENCH=bench-out/bench.json`: what training/bench.py's numbers from one GPU predict for the
configured training run on its instance type (ml.p3dn.24xlarge by default), against the original notebook's 4 hours.

The derivation (docs/training.md, "From the benchmark to the training instance"):
- throughput: the model-FLOPs utilisation measured for the configured method and block size, carried over to the
  instance's GPUs: tokens/s = MFU x GPUs x peak FLOP/s per GPU / FLOPs per token. Once for train.py's default
  (activation checkpointing on every block, eager blocks: the benchmark's baseline, which for LoRA is stock peft)
  and once for its speed options (the benchmark's "ours" and the flags it printed);
- precision: the one the instance's GPUs train in, fp16 with loss scaling on V100s (no bf16), bf16 on the others;
  the benchmark's runs of that precision, or its bf16 runs when it has none (said in the output);
- memory per GPU: the training state train.py keeps (full: 16 bytes a parameter sharded over the GPUs; lora: the
  16-bit base on every GPU and 16 bytes an adapter weight) plus the activations of the per-device batch, taken from
  the benchmark's peak memory less the state the benchmark held (full: bf16 weights, gradients and two Adam states,
  8 bytes a parameter, in bf16; fp32 ones, 16 bytes, in fp16, under autocast: one GPU's fp16 numerics, not the FSDP2
  job's, which the output says);
- time and cost: the run's tokens (as `make cost` counts them) at that throughput, at the price in ops/prices.json.
The MFU of one bf16 GPU need not carry over (older kernels, fp16 loss scaling and FSDP traffic on V100s): the
output says which numbers are measured and which are derived.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import Settings
from config.instance_types import TRAINING_INSTANCE_TYPES
from ops.context import add_arguments, selection_from
from ops.cost import (
    Throughput,
    flat_prices,
    load_prices,
    measured_throughputs,
    on_demand_cost,
    training_hours,
    training_tokens,
)
from training.gpu_peaks import peak_tflops

GIB = 2**30
# The GPU of each training instance type this can estimate, by the name it reports (torch.cuda.get_device_name), so
# that its peak FLOP/s come from the table training/bench.py measures MFU against (training/gpu_peaks.py).
GPU_NAMES = {
    "ml.p3.2xlarge": "Tesla V100-SXM2-16GB",
    "ml.p3.8xlarge": "Tesla V100-SXM2-16GB",
    "ml.p3.16xlarge": "Tesla V100-SXM2-16GB",
    "ml.p3dn.24xlarge": "Tesla V100-SXM2-32GB",
    "ml.p4d.24xlarge": "NVIDIA A100-SXM4-40GB",
    "ml.p4de.24xlarge": "NVIDIA A100-SXM4-80GB",
    "ml.p5.48xlarge": "NVIDIA H100 80GB HBM3",
    "ml.p5e.48xlarge": "NVIDIA H200",
}


def peak_tflops_per_gpu(instance: str) -> float:
    tflops = peak_tflops(GPU_NAMES.get(instance, ""))
    if tflops is None:
        raise ValueError(f"training_instance_type {instance}: no peak FLOP/s per GPU known (GPU_NAMES)")
    return tflops


@dataclass(frozen=True)
class BenchRun:
    """One finished configuration of bench.json."""

    seq: int
    method: str
    impl: str
    micro_batch: int
    checkpoint_every: int
    compiled: bool
    attention: str
    tokens_per_second: float
    parameters: int
    trainable_parameters: int
    flops_per_token: float
    mfu: float
    peak_memory_gib: float
    precision: str = "bf16"  # bench.json files from before bench.py measured fp16 hold bf16 runs only

    def describe(self) -> str:
        checkpointing = {0: "no checkpointing", 1: "checkpointing every block"}.get(
            self.checkpoint_every, f"checkpointing 1 block in {self.checkpoint_every}"
        )
        compiled = "compiled blocks" if self.compiled else "eager blocks"
        precision = "fp16 with loss scaling" if self.precision == "fp16" else self.precision
        attention = f"{self.attention} attention order"
        return f"{precision}, {checkpointing}, {compiled}, {attention}, micro-batch {self.micro_batch}"

    @property
    def frozen(self) -> int:
        return self.parameters - self.trainable_parameters

    def bench_state_gib(self) -> float:
        """What the benchmark held besides activations: bf16 weights, gradients and two Adam states (full, bf16) or
        fp32 ones (full, fp16: train.py's one-V100 numerics); the 16-bit base and fp32 adapters with their gradients
        and Adam states (lora)."""
        if self.method == "full":
            return (16 if self.precision == "fp16" else 8) * self.parameters / GIB
        return (2 * self.frozen + 16 * self.trainable_parameters) / GIB

    def training_state_gib(self, gpus: int) -> float:
        """What train.py keeps per GPU: fp32 weights, gradients and Adam states sharded over the GPUs (full); the
        16-bit base and the fp32 adapters with theirs on every GPU (lora)."""
        if self.method == "full":
            return 16 * self.parameters / gpus / GIB
        return self.bench_state_gib()  # the benchmark holds LoRA's training state as train.py does, unsharded


@dataclass(frozen=True)
class Bench:
    device: str
    runs: list[BenchRun]

    def final(self, seq: int, method: str, impl: str, precision: str) -> BenchRun:
        """The configuration's last finished attempt (ours steps back after failures) in `precision`, else bf16's."""
        for wanted in dict.fromkeys((precision, "bf16")):
            found = [r for r in self.runs if (r.seq, r.method, r.impl, r.precision) == (seq, method, impl, wanted)]
            if found:
                return found[-1]
        raise ValueError(f"the benchmark has no finished {impl} run of {method} at sequence {seq}")


def load_bench(path: Path) -> Bench:
    try:
        payload = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: expected the bench.json that training/bench.py writes ({error})") from None
    runs = []
    for result in payload.get("results", []):
        if result.get("error") is None and result.get("mfu") and result.get("peak_memory_gib"):
            fields = {name: result[name] for name in BenchRun.__dataclass_fields__ if name in result}
            runs.append(BenchRun(**fields))
    if not runs:
        raise ValueError(
            f"{path}: no finished GPU run with MFU and peak memory (device {payload.get('device')!r}); "
            "run training/bench.py on a GPU (docs/training.md)"
        )
    return Bench(str(payload.get("device")), runs)


@dataclass(frozen=True)
class Projection:
    label: str
    run: BenchRun
    tokens_per_second: float
    memory_per_gpu_gib: float
    gpu_memory_gib: int

    @property
    def fits(self) -> bool:
        return self.memory_per_gpu_gib <= self.gpu_memory_gib


def project(run: BenchRun, label: str, settings: Settings) -> Projection:
    instance = settings.training_instance_type
    facts = TRAINING_INSTANCE_TYPES[instance]
    gpus = facts.gpus * settings.training_instance_count
    tokens_per_second = run.mfu * gpus * peak_tflops_per_gpu(instance) * 1e12 / run.flops_per_token
    activations_per_sequence = max(run.peak_memory_gib - run.bench_state_gib(), 0.0) / run.micro_batch
    memory = run.training_state_gib(gpus) + settings.per_device_train_batch_size * activations_per_sequence
    return Projection(label, run, tokens_per_second / settings.training_instance_count, memory, facts.gpu_memory_gib)


def report(
    bench: Bench, settings: Settings, prices: dict[str, Any], throughputs: list[Throughput] | None = None
) -> list[str]:
    instance = settings.training_instance_type
    peak = peak_tflops_per_gpu(instance)
    facts = TRAINING_INSTANCE_TYPES[instance]
    seq, method = settings.block_size, settings.method
    precision = "bf16" if facts.supports_bf16 else "fp16"  # as train.py's --precision auto picks on its GPUs
    # For full fine-tuning the benchmark's baseline computes what train.py's defaults do; for LoRA it is stock peft,
    # the closest benchmarked configuration (train.py's own adapter handling runs only in "ours").
    default_label = "train.py's default" if method == "full" else "stock peft, the closest to train.py's default"
    default = project(bench.final(seq, method, "baseline", precision), default_label, settings)
    speed = project(bench.final(seq, method, "ours", precision), "train.py's speed options", settings)
    tokens = training_tokens(settings)
    price = prices["training_per_hour"].get(instance)
    lines = [
        f"Measured on {bench.device} (training/bench.py): {method}, sequence {seq}",
        f"Derived for {settings.training_instance_count} x {instance} ({facts.gpus} GPUs of {facts.gpu_memory_gib} "
        f"GiB, {peak:.0f} TFLOP/s each), per-device batch "
        f"{settings.per_device_train_batch_size}; {settings.doc_count} documents x {settings.epochs} epochs = "
        f"~{tokens / 1e6:.1f} M tokens; the instance's GPUs train in {precision}",
    ]
    for projection in (default, speed):
        if projection.run.precision != precision:
            lines.append(
                f"  (no finished {precision} run of {projection.label}: its {projection.run.precision} run stands in)"
            )
    if method == "full" and any(projection.run.precision == "fp16" for projection in (default, speed)):
        # bench.py's fp16 full fine-tuning is one GPU's (decision T20), not the FSDP2 job's numerics.
        lines.append(
            "  (fp16 runs: one GPU's numerics, fp32 master weights under fp16 autocast, not the FSDP2 job's, which "
            "casts its sharded fp32 weights to fp16 at each all-gather without autocast; the activations per sequence "
            "below come from the one-GPU peak, so the memory per GPU is an estimate of the job's)"
        )
    for projection in (default, speed):
        run = projection.run
        hours = training_hours(settings, projection.tokens_per_second)
        cost = f", ${on_demand_cost(settings, hours, float(price)):,.0f} on demand" if price else ""
        fits = "fits" if projection.fits else "does NOT fit"
        lines += [
            f"  {projection.label} ({run.describe()}): measured {run.tokens_per_second:,.0f} tokens/s at "
            f"{run.mfu:.1%} MFU, {run.peak_memory_gib:.1f} GiB peak",
            f"    -> ~{projection.tokens_per_second:,.0f} tokens/s per instance, ~{hours:.1f} h{cost}; "
            f"~{projection.memory_per_gpu_gib:.1f} GiB per GPU ({fits} in {projection.gpu_memory_gib})",
        ]
    original = next(
        (
            t
            for t in (measured_throughputs() if throughputs is None else throughputs)
            if (t.instance_type, t.method) == (instance, method) and "original" in t.source
        ),
        None,
    )
    if original:
        hours = training_hours(settings, original.tokens_per_second)
        lines.append(f"  original notebook: {original.tokens_per_second:,.0f} tokens/s measured -> ~{hours:.1f} h")
    # The training stack runs train.py's defaults (decision T16), so only they make the row that `make cost` uses.
    if default.fits:
        source = (
            f"derived, not measured on this type: the {default.run.mfu:.1%} MFU of {default.label} "
            f"({default.run.describe()}) on one {bench.device} (training/bench.py) carried over to {facts.gpus} GPUs "
            f"of {peak:.0f} TFLOP/s by ops/bench_estimate.py"
        )
        lines.append("Row to append to BENCHMARKS.md's throughput table (make cost uses the last row of a type):")
        lines.append(f"| `{instance}` | {method} | {default.tokens_per_second:,.0f} | {source} |")
    else:
        lines.append(f"{default.label} does not fit the {facts.gpu_memory_gib} GiB GPUs: no row for the table.")
    lines.append(
        "Assumed: the MFU measured on one GPU carries over to the instance's GPUs; older GPUs (no flash attention "
        "on V100, fp16 with loss scaling) and FSDP's traffic between GPUs can lower it."
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench-estimate", description=__doc__)
    parser.add_argument("bench", type=Path, help="bench.json written by training/bench.py")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        settings = selection_from(args).settings()
        lines = report(load_bench(args.bench), settings, flat_prices(load_prices(), settings.region))
    except ValueError as error:  # a bad setting (SettingError) or -c value
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
