"""GPU throughput benchmark: GPT-J-6B fine-tuning steps, stock transformers against this project's settings.

The GPT-J-6B architecture at random init (no download), for each sequence length, precision and method (full, LoRA),
in one process. bf16 as an A100/H100 job computes; fp16 with loss scaling as the default job (ml.p3dn.24xlarge's
V100s, which have no bf16) computes, with the numerics train.py gives one V100 (numerics.choose_numerics: fp32
master weights under fp16 autocast for full fine-tuning, the 16-bit base for LoRA, GradScaler, fused AdamW). For full
fine-tuning these are one GPU's numerics, not the 8-rank FSDP2 job's, which casts its sharded fp32 weights to fp16 at
each all-gather and runs without autocast: the same fp16 compute and loss scaling, other memory and casts (LoRA under
DDP computes as on one GPU):
  baseline: stock transformers + peft: SDPA attention, activation checkpointing on (how a stock 6B run fits one
            GPU), fused AdamW; LoRA through peft's defaults (adapters upcast to fp32, inputs copied to fp32).
  ours:     train.py's speed options (speedups.py): no activation checkpointing, each GPTJBlock compiled with
            torch.compile, cuDNN attention first in the SDPA priority list; LoRA is train.py's (fp32 adapters
            under bf16 autocast, no fp32 copies of the activations, no dropout) with an adapter-only fused AdamW.
            When a configuration runs out of memory, ours retries it checkpointing every 4th, then every 2nd,
            then every block; after another error it retries with the default attention order, then uncompiled.
            Every attempt is reported, and the table names the train.py flags of each of ours' final configurations.
In bf16 both use bf16 weights and optimizer states for full fine-tuning (fp32 master weights would need ~97 GB;
train.py keeps them and shards them with FSDP across GPUs, with the same bf16 compute; in fp16 they are fp32, as
GradScaler cannot unscale fp16 gradients, so full fp16 needs a GPU of ~100 GB or more), the same micro-batch of
--tokens_per_micro_batch tokens and the same gradient accumulation, which spreads the optimizer step over more
tokens as a real run does. Each step is train.py's own (finetune.train_step, numerics.py's optimizer and scaler).

Reported per configuration: tokens/s, model-FLOPs utilisation and peak memory (torch.cuda.max_memory_allocated).
MFU counts 6*N FLOPs per token for full fine-tuning and 4*N + 6*N_adapters for LoRA (the forward and the
activation gradients go through every weight; weight gradients exist only for the adapters), N counting every
parameter, as in docs/training.md. Peak dense 16-bit tensor FLOP/s come from the GPU name (gpu_peaks.py;
--peak_tflops overrides).

    python training/bench.py                     # on a GPU: all 12 runs, a markdown table and JSON
    python training/bench.py --tiny --steps 2    # a tiny config, CPU is fine: smoke test of the code paths
Writes bench.md and bench.json to $OUT (or --out) when set.
"""

import argparse
import dataclasses
import gc
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
from arguments import FinetuneArguments
from finetune import LORA_TARGET_MODULES, Distributed, add_lora, resolve_precision, stepping, train_step
from gpu_peaks import peak_tflops
from numerics import Numerics, choose_numerics
from speedups import checkpoint_activations, compile_blocks
from transformers import AutoModelForCausalLM, GPTJConfig

GPTJ_6B: dict[str, Any] = {
    "n_layer": 28,
    "n_embd": 4096,
    "n_head": 16,
    "rotary_dim": 64,
    "vocab_size": 50400,
    "n_positions": 2048,
}
TINY: dict[str, Any] = {
    **{"n_layer": 2, "n_embd": 64, "n_head": 4, "rotary_dim": 8, "vocab_size": 512, "n_positions": 128},
    **{"bos_token_id": 0, "eos_token_id": 0},
}
# ours tries these in order when a configuration runs out of memory: activation checkpointing on every n-th block
# (0: none). Each step back recomputes more and stores less.
OURS_CHECKPOINT_EVERY = (0, 4, 2, 1)
OUT_OF_MEMORY = "out of memory"
# The training stack's default block size: the default job's shape, which the fp16 runs measure.
DEFAULT_JOB_SEQ = 1024


@dataclass
class Result:
    seq: int
    method: str
    impl: str
    micro_batch: int
    accumulation: int
    checkpoint_every: int  # activation checkpointing on every n-th block; 0: none
    compiled: bool
    attention: str  # SDPA kernel order: "cudnn first" or "default"
    precision: str = "bf16"  # "bf16", or "fp16" with loss scaling (the V100 path)
    loss_scaling: bool | None = None  # whether the steps' GradScaler was on, as recorded from it
    warmup_seconds: float | None = None
    tokens_per_second: float | None = None
    parameters: int | None = None
    trainable_parameters: int | None = None
    flops_per_token: float | None = None
    mfu: float | None = None
    peak_memory_gib: float | None = None
    error: str | None = None
    vs_baseline: float | None = None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model and short sequences (CPU smoke test)")
    parser.add_argument("--steps", type=int, default=4, help="measured optimizer steps per configuration")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured steps first (compilation happens here)")
    parser.add_argument("--seq_lengths", type=int, nargs="+", help="default: 2048 1024, the target first (tiny: 64 32)")
    parser.add_argument("--precisions", nargs="+", default=["bf16", "fp16"], choices=["bf16", "fp16"])
    parser.add_argument(
        "--fp16_seq_lengths",
        type=int,
        nargs="+",
        help=f"the sequence lengths of the fp16 runs; default: {DEFAULT_JOB_SEQ}, the default job's (tiny: 32)",
    )
    parser.add_argument("--methods", nargs="+", default=["full", "lora"], choices=["full", "lora"])
    parser.add_argument("--impls", nargs="+", default=["baseline", "ours"], choices=["baseline", "ours"])
    parser.add_argument("--tokens_per_micro_batch", type=int, help="default: 8192 (tiny: 128)")
    parser.add_argument("--accumulation", type=int, default=2, help="micro-batches per optimizer step")
    parser.add_argument("--lora_r", type=int, default=16)
    parser.add_argument("--no_compile", action="store_true", help="ours without torch.compile")
    parser.add_argument("--peak_tflops", type=float, help="peak dense bf16 TFLOP/s of the device")
    parser.add_argument("--out", default=os.environ.get("OUT"), help="folder for bench.md and bench.json")
    args = parser.parse_args(argv)
    args.seq_lengths = args.seq_lengths or ([64, 32] if args.tiny else [2048, 1024])
    args.fp16_seq_lengths = args.fp16_seq_lengths or ([32] if args.tiny else [DEFAULT_JOB_SEQ])
    args.tokens_per_micro_batch = args.tokens_per_micro_batch or (128 if args.tiny else 8192)
    for seq in {*args.seq_lengths, *args.fp16_seq_lengths}:
        if args.tokens_per_micro_batch % seq:
            parser.error(f"--tokens_per_micro_batch {args.tokens_per_micro_batch} is not a multiple of sequence {seq}")
    return args


def peak_flops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override * 1e12
    if device.type != "cuda":
        return None
    tflops = peak_tflops(torch.cuda.get_device_name(device))
    return None if tflops is None else tflops * 1e12


def plan(args: argparse.Namespace) -> list[tuple[int, str]]:
    """(sequence, precision) in the order they run, the most wanted first, as a time limit keeps what finished: bf16
    at the target sequence, then fp16 at the default job's, then the rest of bf16."""
    bf16 = [(seq, "bf16") for seq in args.seq_lengths] if "bf16" in args.precisions else []
    fp16 = [(seq, "fp16") for seq in args.fp16_seq_lengths] if "fp16" in args.precisions else []
    return bf16[:1] + fp16 + bf16[1:]


def step_numerics(result: "Result", device: torch.device) -> Numerics:
    """The numerics of a configuration: train.py's for one GPU (numerics.choose_numerics), except where the benchmark
    measures another way. fp16 is train.py's one-V100 numerics; bf16 keeps full fine-tuning's weights in bf16, with no
    autocast (DESIGN.md section 5's reference). ours' LoRA runs under autocast (fp32 adapters on the 16-bit base,
    train.py's way); stock peft, the LoRA baseline, casts its inputs instead."""
    dtype = resolve_precision(result.precision, device)  # as train.py's --precision: bf16 on a V100 stops, named
    numerics = choose_numerics(result.method, 1, dtype, device.type)
    if result.precision == "bf16" and result.method == "full":
        numerics = dataclasses.replace(numerics, load_dtype=dtype, autocast_dtype=None)
    if result.method == "lora" and result.impl == "baseline":
        numerics = dataclasses.replace(numerics, autocast_dtype=None)
    return numerics


def build_model(
    config: GPTJConfig, result: "Result", load_dtype: torch.dtype, lora_r: int, device: torch.device
) -> torch.nn.Module:
    with device:
        model = AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
            config, dtype=load_dtype, attn_implementation="sdpa"
        )
    model.config.use_cache = False
    checkpoint_activations(model, result.checkpoint_every)
    if result.method == "lora":
        if result.impl == "baseline":
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(
                r=lora_r, lora_alpha=2 * lora_r, target_modules=LORA_TARGET_MODULES, task_type="CAUSAL_LM"
            )
            return get_peft_model(model, lora)
        return add_lora(model, FinetuneArguments(method="lora", lora_r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.0))
    return cast(torch.nn.Module, model)


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(every parameter, the trainable ones)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def flops_per_token(model: torch.nn.Module, method: str) -> float:
    total, trainable = parameter_counts(model)
    return 6.0 * total if method == "full" else 4.0 * (total - trainable) + 6.0 * trainable


def make_step(model: torch.nn.Module, batch: torch.Tensor, result: Result, numerics: Numerics) -> Callable[[], None]:
    """One optimizer step of train.py (finetune.train_step, with finetune.stepping's optimizer, loss scaler and forward
    context) over the configuration's micro-batches."""
    device = batch.device
    env = Distributed(rank=0, local_rank=0, world_size=1, device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    cudnn_first = result.attention == "cudnn first"
    args = FinetuneArguments(learning_rate=1e-5, weight_decay=0.0, cudnn_attention_first=cudnn_first)
    optimizer, scaler, forward = stepping(params, args, numerics, device.type)
    result.loss_scaling = scaler.is_enabled()
    accumulation = result.accumulation

    def step() -> None:
        train_step(model, [batch] * accumulation, optimizer, scaler, params, 1.0, forward, env)

    return step


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_one(config: GPTJConfig, result: Result, args: argparse.Namespace, device: torch.device) -> None:
    """Fill result's measurements (or its error) for one configuration."""
    numerics = step_numerics(result, device)  # a precision this GPU lacks stops before anything is allocated
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model = build_model(config, result, numerics.load_dtype, args.lora_r, device)
    if result.compiled:
        compile_blocks(model)
    batch = torch.randint(config.vocab_size, (result.micro_batch, result.seq), device=device)
    step = make_step(model, batch, result, numerics)
    start = time.perf_counter()
    for _ in range(args.warmup):
        step()
    synchronize(device)
    result.warmup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    synchronize(device)
    seconds = time.perf_counter() - start
    result.tokens_per_second = args.steps * result.accumulation * result.micro_batch * result.seq / seconds
    result.parameters, result.trainable_parameters = parameter_counts(model)
    result.flops_per_token = flops_per_token(model, result.method)
    peak = peak_flops(device, args.peak_tflops)
    if peak:
        result.mfu = result.tokens_per_second * result.flops_per_token / peak
    if device.type == "cuda":
        result.peak_memory_gib = torch.cuda.max_memory_allocated(device) / 2**30


def run_configuration(
    config: GPTJConfig,
    seq: int,
    method: str,
    impl: str,
    args: argparse.Namespace,
    device: torch.device,
    precision: str = "bf16",
) -> list[Result]:
    """Every attempt at one configuration, the last one counting. The baseline runs once, checkpointing every block
    as a stock 6B run does to fit one GPU. ours steps back on failure: after running out of memory it checkpoints
    more blocks (OURS_CHECKPOINT_EVERY); after another error it drops the cuDNN attention order, then compilation."""
    ours = impl == "ours"
    checkpoint_every = list(OURS_CHECKPOINT_EVERY if ours else (1,))
    attention = "cudnn first" if ours and device.type == "cuda" else "default"
    compiled = ours and not args.no_compile
    attempts: list[Result] = []
    while True:
        micro_batch = args.tokens_per_micro_batch // seq
        result = Result(
            seq, method, impl, micro_batch, args.accumulation, checkpoint_every[0], compiled, attention, precision
        )
        print(f"running {result}", flush=True)
        run_guarded(config, result, args, device)
        print(json.dumps(asdict(result)), flush=True)
        attempts.append(result)
        if result.error is None:
            return attempts
        if result.error == OUT_OF_MEMORY and len(checkpoint_every) > 1:
            checkpoint_every.pop(0)
        elif result.error != OUT_OF_MEMORY and attention != "default":
            attention = "default"
        elif result.error != OUT_OF_MEMORY and compiled:
            compiled = False
        else:
            return attempts


def run_all(args: argparse.Namespace, device: torch.device, report: Callable[[list[Result]], None]) -> list[Result]:
    """Every configuration; report gets the results so far after each one (a time limit keeps what finished)."""
    config = GPTJConfig(**(TINY if args.tiny else GPTJ_6B))
    results: list[Result] = []
    for seq, precision in plan(args):
        for method in args.methods:
            for impl in args.impls:
                attempts = run_configuration(config, seq, method, impl, args, device, precision)
                shape = (seq, method, "baseline", precision)
                baseline = next((r for r in results if (r.seq, r.method, r.impl, r.precision) == shape), None)
                final = attempts[-1]
                if impl == "ours" and baseline and baseline.tokens_per_second and final.tokens_per_second:
                    final.vs_baseline = final.tokens_per_second / baseline.tokens_per_second
                results += attempts
                report(results)
    return results


def run_guarded(config: GPTJConfig, result: Result, args: argparse.Namespace, device: torch.device) -> None:
    start = time.perf_counter()
    try:
        run_one(config, result, args, device)
    except torch.OutOfMemoryError:
        result.error = OUT_OF_MEMORY
    except (RuntimeError, ValueError) as error:  # a kernel, compiler or precision this GPU lacks: recorded, not fatal
        result.error = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}" if str(error) else repr(error)
    finally:
        # Free this configuration's model, optimizer and compiled graphs before the next one.
        gc.collect()
        if result.compiled:
            torch._dynamo.reset()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(f"{result.seq} {result.method} {result.impl}: {time.perf_counter() - start:.0f} s", flush=True)


def _cell(value: float | None, template: str) -> str:
    return "-" if value is None else template.format(value)


def _checkpointed(result: Result) -> str:
    return {0: "none", 1: "all"}.get(result.checkpoint_every, f"1 in {result.checkpoint_every}")


def markdown(results: list[Result], device_name: str) -> str:
    header = ["seq", "precision", "method", "impl", "micro-batch x accumulation", "checkpointed blocks", "compiled"]
    header += ["attention", "tokens/s", "MFU", "peak GiB", "vs baseline"]
    lines = [f"Device: {device_name}; torch {torch.__version__}", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + " --- |" * len(header))
    for r in results:
        precision = "fp16 + loss scaling" if r.precision == "fp16" else r.precision
        cells = [str(r.seq), precision, r.method, r.impl, f"{r.micro_batch} x {r.accumulation}", _checkpointed(r)]
        cells += ["yes" if r.compiled else "no", r.attention, r.error or _cell(r.tokens_per_second, "{:,.0f}")]
        cells += [_cell(r.mfu, "{:.1%}"), _cell(r.peak_memory_gib, "{:.1f}"), _cell(r.vs_baseline, "{:.2f}x")]
        lines.append("| " + " | ".join(cells) + " |")
    for seq, precision in sorted({(r.seq, r.precision) for r in results}, reverse=True):
        ours = {
            r.method: r.tokens_per_second
            for r in results
            if (r.seq, r.precision, r.impl) == (seq, precision, "ours") and r.tokens_per_second
        }
        full, lora = ours.get("full"), ours.get("lora")
        if full and lora:
            lines.append(f"\nours, sequence {seq}, {precision}: LoRA / full tokens/s = {lora / full:.2f}")
    finished = [r for r in results if r.impl == "ours" and r.error is None]
    lines += [""] if finished else []
    for r in finished:
        lines.append(f"train.py flags of ours, {r.method}, sequence {r.seq}, {r.precision}: {train_flags(r)}")
    return "\n".join(lines)


def train_flags(result: Result) -> str:
    """The train.py arguments that run a configuration's speed options (block size and batch are the job's)."""
    every = result.checkpoint_every
    checkpointing = (
        f"--gradient_checkpointing True --gradient_checkpointing_every {every}"
        if every
        else ("--gradient_checkpointing False")
    )
    return (
        f"--method {result.method} --block_size {result.seq} --precision {result.precision} {checkpointing} "
        f"--compile_blocks {result.compiled} --cudnn_attention_first {result.attention == 'cudnn first'}"
    )


def write_report(results: list[Result], args: argparse.Namespace, device_name: str) -> None:
    if not args.out:
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.md").write_text(markdown(results, device_name) + "\n")
    runs = [asdict(result) for result in results]
    payload = {"device": device_name, "torch": torch.__version__, "args": vars(args), "results": runs}
    (out / "bench.json").write_text(json.dumps(payload, indent=1))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # Before the first CUDA allocation: growable segments waste less memory to fragmentation between the
    # configurations (baseline and ours alike).
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    torch.manual_seed(0)
    results = run_all(args, device, lambda so_far: write_report(so_far, args, device_name))
    print(markdown(results, device_name), flush=True)


if __name__ == "__main__":
    main()
