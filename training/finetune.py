"""Fine-tune GPT-J-6B as a causal LM on the judgments' text: one process of a torchrun job (or a lone process).

Methods: `full` trains every weight with fp32 master weights; across GPUs they are sharded with FSDP2
(`fully_shard` per GPTJBlock, compute in the training precision, gradients reduce-scattered in fp32). `lora`
freezes the base in the training precision and trains fp32 adapters on every linear layer, replicated with DDP.
Precision: bf16 on compute capability >= 8, fp16 with loss scaling below (V100), fp32 on the CPU; what follows from
the method, the world size, the precision and the device (scaler, autocast, optimizer) is numerics.py's decision.
Checkpoints: full state dicts gathered to rank 0 with torch.distributed.checkpoint.state_dict and written by it
alone (see checkpointing.py); on start the newest complete one is loaded and broadcast from rank 0.
Output: a Hugging Face folder in SM_MODEL_DIR (safetensors in the training precision, config, generation
config, tokenizer), LoRA merged into the base weights.
"""

import contextlib
import datetime
import functools
import json
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple, cast

import checkpointing
import torch
import torch.distributed as dist
import transformers
from arguments import FinetuneArguments, ModelArguments, parse_args
from data import BatchPlan, eval_batches, tokenize_and_pack
from metrics import format_metrics
from numerics import Numerics, build_optimizer, choose_numerics, describe, grad_scaler
from speedups import checkpoint_activations, compile_blocks, forward_context, gptj_blocks
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor
from torch.nn.parallel import DistributedDataParallel
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    get_scheduler,
)
from transformers.utils import logging as transformers_logging

LORA_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "out_proj", "fc_in", "fc_out"]


@dataclass(frozen=True)
class Distributed:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def log(message: str) -> None:
    if int(os.environ.get("RANK", "0")) == 0:
        print(message, flush=True)


def init_distributed() -> Distributed:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1:
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            device_id=device if device.type == "cuda" else None,
            timeout=datetime.timedelta(hours=1),  # rank 0 writes multi-GB checkpoints while the others wait
        )
    return Distributed(int(os.environ.get("RANK", "0")), local_rank, world_size, device)


def barrier(env: Distributed) -> None:
    if env.world_size > 1:
        dist.barrier()


def leave_process_group(env: Distributed) -> None:
    """The end of a run of several processes, once each has written what it writes: a barrier, then the process
    group's end; under gloo (CPU runs) also the process's, so call it last."""
    if env.world_size == 1:
        return
    dist.barrier()  # every rank has written what it writes
    gloo = dist.get_backend() == "gloo"
    dist.destroy_process_group()
    if gloo:
        # gloo's worker thread drops a finished collective, and the Python tensors it holds, after the collective
        # has returned; when it does so while the interpreter shuts down it cannot take the GIL and the process
        # aborts ("terminate called without an active exception": std::terminate under
        # ProcessGroupGloo::runLoop -> ~AsyncBarrierWork -> decref_pyobject, read from a core dump of a 2-rank
        # CPU run, about 1 run in 10). All is written and flushed, so leave without the interpreter's shutdown.
        # NCCL (every GPU job) does not take this path.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def broadcast(obj: Any, env: Distributed) -> Any:
    """Rank 0's obj on every rank."""
    if env.world_size == 1:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def has_kernels(capability: tuple[int, int], arch_list: list[str]) -> bool:
    """Whether a torch build for arch_list runs on a GPU of this compute capability: a cubin (sm_XY) runs on
    the same major version with the same or a newer minor one, PTX (compute_XY) on the same or a newer GPU."""
    for arch in arch_list:
        match = re.fullmatch(r"(sm|compute)_(\d+)(\d)a?", arch)
        if match:
            built_for = (int(match[2]), int(match[3]))
            if built_for <= capability and (match[1] == "compute" or built_for[0] == capability[0]):
                return True
    return False


def check_runtime(env: Distributed) -> None:
    """Log the versions; fail at once where this torch build has no kernels for the GPU (DESIGN.md D5: recent
    CUDA builds dropped the V100's sm_70)."""
    runtime = f"torch {torch.__version__}, transformers {transformers.__version__}"
    if env.device.type != "cuda":
        log(f"{runtime}, no GPU")
        return
    capability = torch.cuda.get_device_capability(env.device)
    arch_list = torch.cuda.get_arch_list()
    log(f"{runtime}, CUDA {torch.version.cuda} for {' '.join(arch_list)}; {torch.cuda.get_device_name(env.device)}")
    if not has_kernels(capability, arch_list):
        raise RuntimeError(
            f"this torch build has no kernels for compute capability {capability} ({' '.join(arch_list)}): "
            "use a container whose CUDA 12.x torch build includes it"
        )


def resolve_precision(requested: str, device: torch.device) -> torch.dtype:
    capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
    if requested == "auto":
        if capability is None:
            return torch.float32
        return torch.bfloat16 if capability >= (8, 0) else torch.float16
    if requested == "bf16" and capability is not None and capability < (8, 0):
        raise ValueError(f"--precision: bf16 needs compute capability >= 8.0, this GPU has {capability}; use fp16")
    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[requested]


@contextlib.contextmanager
def local_main_first(env: Distributed) -> Iterator[None]:
    """Local rank 0 fills the node's Hub cache before the other ranks of the node read it."""
    if env.local_rank != 0:
        barrier(env)
    yield
    if env.local_rank == 0:
        barrier(env)


def load_model(
    model_args: ModelArguments, load_dtype: torch.dtype, env: Distributed
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    source = model_args.model_name_or_path
    hub = {} if Path(source).is_dir() else {"revision": model_args.model_revision}
    with local_main_first(env):
        tokenizer = AutoTokenizer.from_pretrained(source, **hub)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=load_dtype, attn_implementation=model_args.attn_implementation, **hub
        )
    # Fail rather than silently train with another attention kernel (older transformers: eager only).
    if model.config._attn_implementation != model_args.attn_implementation:
        raise RuntimeError(
            f"--attn_implementation {model_args.attn_implementation}: the model loaded with "
            f"{model.config._attn_implementation}; transformers 5.24 or newer runs GPT-J with SDPA"
        )
    if tokenizer.eos_token_id is None:
        raise ValueError(f"the tokenizer of {source} has no EOS token to separate documents")
    return model, tokenizer


def add_lora(model: PreTrainedModel, args: FinetuneArguments) -> torch.nn.Module:
    # Imported here: peft takes seconds to import and only LoRA needs it.
    from peft import LoraConfig, get_peft_model
    from peft.tuners.tuners_utils import BaseTunerLayer

    config = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=LORA_TARGET_MODULES,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)  # freezes the base; adapters in fp32 (autocast_adapter_dtype)
    for module in peft_model.modules():
        if isinstance(module, BaseTunerLayer):
            # peft would copy every activation to fp32 to match the adapters; autocast runs them in `dtype`.
            cast(Any, module).cast_input_dtype_enabled = False
    return peft_model


def prepare_model(
    model: PreTrainedModel, args: FinetuneArguments, numerics: Numerics, env: Distributed
) -> torch.nn.Module:
    model.config.use_cache = False
    if args.gradient_checkpointing:
        checkpoint_activations(model, args.gradient_checkpointing_every)
        every = args.gradient_checkpointing_every
        log(f"activation checkpointing on {'every block' if every == 1 else f'1 block in {every}'}")
    if args.method == "lora":
        peft_model = add_lora(model, args).to(env.device)
        if args.compile_blocks:
            log(f"compiling {compile_blocks(peft_model)} blocks with their adapters")
        if numerics.parallelism != "ddp":
            return peft_model
        return DistributedDataParallel(peft_model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    if args.compile_blocks:
        log(f"compiling {compile_blocks(model)} blocks")  # before sharding, the order torchtitan uses
    if numerics.parallelism == "fsdp":
        # Sharding each block keeps one block's full weights in memory at a time; fully_shard moves the shards to
        # the GPU, so the fp32 model loaded on the CPU never lands whole on one GPU.
        policy = MixedPrecisionPolicy(param_dtype=numerics.precision, reduce_dtype=torch.float32)
        for block in gptj_blocks(model):
            fully_shard(block, mp_policy=policy)
        fully_shard(model, mp_policy=policy)
        if numerics.sum_then_divide:
            for module in model.modules():
                if isinstance(module, FSDPModule):
                    module.set_force_sum_reduction_for_comms(True)
    return cast(torch.nn.Module, model).to(env.device)


class Stepping(NamedTuple):
    """What each optimizer step of a run steps with, as its numerics decide: numerics.py's optimizer and loss scaler
    (a no-op unless fp16), and the context of every forward pass (autocast, the attention kernels' order)."""

    optimizer: torch.optim.AdamW
    scaler: torch.amp.GradScaler
    forward: Callable[[], AbstractContextManager[Any]]


def stepping(
    params: list[torch.nn.Parameter], args: FinetuneArguments, numerics: Numerics, device_type: str
) -> Stepping:
    """train.py's optimizer, scaler and forward context for `params` under `numerics` (bench.py's steps too)."""
    return Stepping(
        optimizer=build_optimizer(params, args.learning_rate, args.weight_decay, numerics),
        scaler=grad_scaler(numerics, device_type),
        forward=functools.partial(forward_context, device_type, numerics.autocast_dtype, args.cudnn_attention_first),
    )


@dataclass(frozen=True)
class RunSetup:
    numerics: Numerics
    config: PretrainedConfig  # the loaded model's
    tokenizer: PreTrainedTokenizerBase
    model: torch.nn.Module  # prepared: sharded (FSDP2), with adapters (LoRA), replicated (DDP), on the device
    params: list[torch.nn.Parameter]  # the trainable ones
    stepping: Stepping


def set_up(model_args: ModelArguments, args: FinetuneArguments, env: Distributed) -> RunSetup:
    """A run's numerics for its method, world size, precision and device, then the model loaded and prepared under
    them, and what its steps step with: train.py's setup, which the numerics tests run as it is."""
    precision = resolve_precision(args.precision, env.device)
    numerics = choose_numerics(args.method, env.world_size, precision, env.device.type)
    log(
        f"{args.method} fine-tuning on {env.world_size} x {env.device.type}, {precision}, "
        f"{model_args.attn_implementation}"
    )
    log(describe(numerics))
    base_model, tokenizer = load_model(model_args, numerics.load_dtype, env)
    model = prepare_model(base_model, args, numerics, env)
    params = [p for p in model.parameters() if p.requires_grad]
    log(f"trainable parameters: {sum(p.numel() for p in params):,}")
    parts = stepping(params, args, numerics, env.device.type)
    return RunSetup(numerics, base_model.config, tokenizer, model, params, parts)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def _scalar(value: torch.Tensor) -> float:
    return float(value.full_tensor() if isinstance(value, DTensor) else value)


def train_step(
    model: torch.nn.Module,
    micro_batches: list[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    params: list[torch.nn.Parameter],
    max_grad_norm: float,
    forward_context: Callable[[], AbstractContextManager[Any]],
    env: Distributed,
) -> tuple[float, float]:
    """One optimizer step over the micro-batches; returns (mean loss over all ranks, gradient norm)."""
    losses = []
    for batch in micro_batches:
        batch = batch.to(env.device, non_blocking=True)
        with forward_context():
            loss = model(input_ids=batch, labels=batch, use_cache=False).loss
        scaler.scale(loss / len(micro_batches)).backward()
        losses.append(loss.detach())
    scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    scaler.step(optimizer)  # skipped when fp16 gradients overflowed
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    mean_loss = torch.stack(losses).mean()
    if env.world_size > 1:
        dist.all_reduce(mean_loss)
        mean_loss /= env.world_size
    return mean_loss.item(), _scalar(grad_norm)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    blocks: torch.Tensor,
    batch_size: int,
    forward_context: Callable[[], AbstractContextManager[Any]],
    env: Distributed,
) -> dict[str, float]:
    """Mean next-token loss over every validation block, and its perplexity."""
    start = time.perf_counter()
    model = unwrap(model)
    model.eval()
    totals = torch.zeros(2, dtype=torch.float64, device=env.device)  # (sum of block losses, blocks)
    for indices, valid in eval_batches(len(blocks), env.world_size, env.rank, batch_size):
        batch = blocks[indices].to(env.device)
        with forward_context():
            logits = model(input_ids=batch, use_cache=False).logits
        logits, targets = logits[:, :-1].flatten(0, 1).float(), batch[:, 1:].flatten()
        block_losses = torch.nn.functional.cross_entropy(logits, targets, reduction="none").view(len(batch), -1).mean(1)
        mask = valid.to(env.device, torch.float64)
        totals += torch.stack([(block_losses.double() * mask).sum(), mask.sum()])
    if env.world_size > 1:
        dist.all_reduce(totals)
    model.train()
    loss = (totals[0] / totals[1]).item()
    perplexity = math.exp(loss) if loss < 700 else math.inf
    return {"eval_loss": loss, "eval_perplexity": perplexity, "eval_runtime": time.perf_counter() - start}


def rng_state(env: Distributed) -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if env.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(env.device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], env: Distributed) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and env.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], env.device)


def checkpoint_folder(checkpoint_dir: str) -> Path:
    """checkpoint_dir, or its subfolder for this SageMaker job: the training jobs of a tuning job may share one
    checkpoint S3 prefix, and each must resume only its own checkpoints (a spot restart keeps the job's name)."""
    job = os.environ.get("TRAINING_JOB_NAME")
    return Path(checkpoint_dir) / job if job else Path(checkpoint_dir)


@dataclass(frozen=True)
class Schedule:
    """Everything the learning rate of a step depends on. A checkpoint resumes only under the schedule it was
    written under: the optimizer's restored learning rate and the scheduler's step count belong to that schedule
    (resumed with a larger --max_steps, a finished linear schedule trained its next step at learning rate 0)."""

    total_steps: int
    warmup_steps: int
    lr_scheduler_type: str
    learning_rate: float

    @classmethod
    def of(cls, args: FinetuneArguments, plan: BatchPlan) -> "Schedule":
        total = plan.total_steps(args.epochs, args.max_steps)
        return cls(total, math.ceil(args.warmup_ratio * total), args.lr_scheduler_type, args.learning_rate)

    def scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        return cast(
            torch.optim.lr_scheduler.LRScheduler,
            get_scheduler(
                self.lr_scheduler_type,
                optimizer,
                num_warmup_steps=self.warmup_steps,
                num_training_steps=self.total_steps,
            ),
        )


def _schedule_arguments(args: FinetuneArguments) -> dict[str, Any]:
    return {
        "max_steps": args.max_steps,
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "warmup_ratio": args.warmup_ratio,
        "lr_scheduler_type": args.lr_scheduler_type,
    }


# Full (unsharded) state dicts gathered to rank 0's CPU: one checkpoint layout for 1 or N GPUs, written by
# rank 0 alone. Frozen weights (the LoRA base) are left out: they come from the base model.
_GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)


def save_checkpoint(
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    plan: BatchPlan,
    schedule: Schedule,
    history: list[dict[str, float]],
    args: FinetuneArguments,
    env: Distributed,
) -> dict[str, Any]:
    """Write a complete checkpoint (rank 0); returns the gathered model state (empty on the other ranks)."""
    model_state = get_model_state_dict(model, options=_GATHER)
    optimizer_state = get_optimizer_state_dict(model, optimizer, options=_GATHER)
    rng: list[dict[str, torch.Tensor] | None] = [None] * env.world_size
    if env.world_size > 1:
        dist.all_gather_object(rng, rng_state(env))
    else:
        rng[0] = rng_state(env)
    if env.is_main:
        state = {
            "step": step,
            "method": args.method,
            "blocks_per_step": plan.blocks_per_step,
            "num_blocks": plan.num_blocks,
            "schedule": asdict(schedule),
            "schedule_arguments": _schedule_arguments(args),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": rng,
            "history": history,
        }
        files = {"model.pt": model_state, "optimizer.pt": optimizer_state, "state.pt": state}
        folder = checkpointing.save(checkpoint_folder(args.checkpoint_dir), step, files, args.keep_checkpoints)
        log(f"saved checkpoint {folder}")
    barrier(env)
    return model_state


def resume(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    plan: BatchPlan,
    schedule: Schedule,
    args: FinetuneArguments,
    env: Distributed,
) -> tuple[int, list[dict[str, float]]]:
    """Load the newest complete checkpoint, if any; returns (step to continue from, metrics history)."""
    directory = checkpoint_folder(args.checkpoint_dir)
    folder = None
    if env.is_main:
        checkpointing.remove_temporary(directory)
        folder = checkpointing.latest(directory)
    folder = broadcast(folder, env)
    if folder is None:
        log(f"no checkpoint in {directory}: starting from the base model")
        return 0, []
    state = broadcast(checkpointing.load(folder, "state.pt") if env.is_main else None, env)
    expected = {"method": args.method, "blocks_per_step": plan.blocks_per_step, "num_blocks": plan.num_blocks}
    found = {key: state[key] for key in expected}
    if found != expected:
        raise ValueError(f"checkpoint {folder} was written by another configuration: {found}, this run: {expected}")
    if state.get("schedule") != asdict(schedule):
        written = state.get("schedule_arguments", "unknown (written before checkpoints recorded their schedule)")
        raise ValueError(
            f"checkpoint {folder} was written under another learning-rate schedule: {state.get('schedule')} from "
            f"{written}; this run: {asdict(schedule)} from {_schedule_arguments(args)}. Resume with the arguments it "
            "was written with (a spot restart does), or start a new run (another --checkpoint_dir) from its model"
        )
    # Rank 0 reads the files; the other ranks receive their shards (FSDP) or copies from it.
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=env.world_size > 1, ignore_frozen_params=True)
    model_state = checkpointing.load(folder, "model.pt") if env.is_main else {}
    set_model_state_dict(model, model_state, options=options)
    optimizer_state = checkpointing.load(folder, "optimizer.pt") if env.is_main else {}
    set_optimizer_state_dict(model, optimizer, optimizer_state, options=options)
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    if len(state["rng"]) == env.world_size:
        set_rng_state(state["rng"][env.rank], env)
    step = state["step"]
    epoch, index = plan.position(step)
    log(f"resumed from checkpoint {folder} at step {step} (epoch {epoch}, step {index} of {plan.steps_per_epoch})")
    return step, state["history"]


def write_hf_model(
    config: PretrainedConfig,
    generation_config: GenerationConfig,
    state: dict[str, torch.Tensor],
    tokenizer: PreTrainedTokenizerBase,
    dtype: torch.dtype,
    directory: Path,
) -> None:
    """A Hugging Face folder (safetensors in `dtype`, config, generation config, tokenizer) for serving."""
    config.use_cache = True
    # A model on the meta device costs no memory; the gathered tensors become its weights.
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)  # type: ignore[no-untyped-call]
    model.load_state_dict({name: tensor.to(dtype) for name, tensor in state.items()}, strict=True, assign=True)
    if generation_config.pad_token_id is None:  # GPT-J has no pad token; batched generation pads with EOS
        generation_config.pad_token_id = tokenizer.eos_token_id
    model.generation_config = generation_config
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    for path in directory.iterdir():  # transformers writes the weights 0600; the serving container reads them
        path.chmod(0o644)


def save_model(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    args: FinetuneArguments,
    dtype: torch.dtype,
    env: Distributed,
    full_state: dict[str, Any] | None = None,
) -> None:
    """Write the Hugging Face model folder (rank 0). full_state: the final checkpoint's gathered weights, which for
    `full` are the weights to save (nothing is frozen), so they are not gathered a second time."""
    hf_model: Any = unwrap(model)  # the transformers model (FSDP-sharded or not) or the peft model
    state: dict[str, Any] = {}
    if args.method == "lora":
        if env.is_main:  # merging is local: no collectives, so rank 0 merges alone
            hf_model = hf_model.merge_and_unload()
            state = hf_model.state_dict()
    elif full_state is not None:
        state = full_state
    else:
        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if env.is_main:
        write_hf_model(hf_model.config, hf_model.generation_config, state, tokenizer, dtype, Path(args.model_dir))
        log(f"saved the fine-tuned model ({dtype}) to {args.model_dir}")
    barrier(env)


def format_duration(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


def main() -> None:
    # Progress bars make unreadable CloudWatch logs.
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    # The training loop never modifies the model's outputs in place, which is what this warning is about.
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
    model_args, data_args, args = parse_args()
    env = init_distributed()
    check_runtime(env)
    torch.manual_seed(args.seed)
    setup = set_up(model_args, args, env)
    if data_args.block_size > setup.config.n_positions:
        raise ValueError(
            f"--block_size: expected at most the model's n_positions {setup.config.n_positions}, "
            f"got {data_args.block_size}"
        )
    model, tokenizer, params, dtype = setup.model, setup.tokenizer, setup.params, setup.numerics.precision
    optimizer, scaler, forward = setup.stepping
    train_blocks = tokenize_and_pack(Path(data_args.train_dir), tokenizer, data_args.block_size)
    eval_blocks = tokenize_and_pack(Path(data_args.validation_dir), tokenizer, data_args.block_size)
    plan = BatchPlan(
        len(train_blocks), env.world_size, args.per_device_train_batch_size, args.gradient_accumulation_steps, args.seed
    )
    schedule = Schedule.of(args, plan)
    total_steps = schedule.total_steps
    log(
        f"{len(train_blocks)} training and {len(eval_blocks)} validation blocks of {data_args.block_size} tokens; "
        f"{plan.blocks_per_step} blocks per step, {plan.steps_per_epoch} steps per epoch, {total_steps} steps"
    )
    scheduler = schedule.scheduler(optimizer)

    start_step, history = resume(model, optimizer, scheduler, scaler, plan, schedule, args, env)

    def run_eval(step: int) -> None:
        record = {**evaluate(model, eval_blocks, args.per_device_train_batch_size, forward, env), "step": step}
        log(format_metrics(record))
        history.append(record)

    if start_step == 0:
        run_eval(0)  # the base model's loss and perplexity
    run_start = time.perf_counter()
    window_losses: list[float] = []
    window_seconds = 0.0
    final_state: dict[str, Any] | None = None  # the last checkpoint's weights, reused by save_model
    for step in range(start_step, total_steps):
        step_start = time.perf_counter()
        learning_rate = optimizer.param_groups[0]["lr"]
        micro_batches = [train_blocks[indices] for indices in plan.block_indices(step, env.rank)]
        loss, grad_norm = train_step(model, micro_batches, optimizer, scaler, params, args.max_grad_norm, forward, env)
        scheduler.step()
        window_seconds += time.perf_counter() - step_start
        window_losses.append(loss)
        done = step + 1
        if done % args.logging_steps == 0 or done == total_steps:
            record = {
                "loss": sum(window_losses) / len(window_losses),
                "learning_rate": learning_rate,
                "grad_norm": grad_norm,
                "tokens_per_second": len(window_losses) * plan.blocks_per_step * data_args.block_size / window_seconds,
                "epoch": done / plan.steps_per_epoch,
                "step": done,
            }
            log(format_metrics(record))
            history.append(record)
            elapsed = time.perf_counter() - run_start
            eta = elapsed / (done - start_step) * (total_steps - done)
            progress = f"step {done}/{total_steps} ({done / total_steps:.1%})"
            log(f"{progress}, elapsed {format_duration(elapsed)}, eta {format_duration(eta)}")
            window_losses, window_seconds = [], 0.0
        if args.eval_every_steps and done % args.eval_every_steps == 0 and done < total_steps:
            run_eval(done)
        if args.checkpoint_every_steps and (done % args.checkpoint_every_steps == 0 or done == total_steps):
            model_state = save_checkpoint(done, model, optimizer, scheduler, scaler, plan, schedule, history, args, env)
            final_state = model_state if done == total_steps else None

    run_eval(total_steps)
    evals = [record for record in history if "eval_loss" in record]
    log(f"eval perplexity: base {evals[0]['eval_perplexity']:.4f}, fine-tuned {evals[-1]['eval_perplexity']:.4f}")
    save_model(model, tokenizer, args, dtype, env, full_state=final_state)
    if env.is_main:
        output = Path(args.output_data_dir)
        output.mkdir(parents=True, exist_ok=True)
        (output / "metrics.json").write_text(
            json.dumps({"history": history, "base": evals[0], "final": evals[-1]}, indent=1)
        )
    leave_process_group(env)


if __name__ == "__main__":
    main()
