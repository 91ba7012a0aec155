"""Command-line arguments of train.py, run_clm style: typed dataclasses parsed by HfArgumentParser.

SageMaker passes each hyperparameter as `--key value` (booleans as `True`/`False`), so every hyperparameter is
one field here. Paths default to the SageMaker environment (SM_CHANNEL_*, SM_MODEL_DIR, ...) and fall back to
the container's standard folders, so the same command runs on a laptop when those variables point at local
folders.
"""

import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Literal

from transformers import HfArgumentParser

MODEL_ID = "EleutherAI/gpt-j-6b"
# The main-branch commit of EleutherAI/gpt-j-6b on the Hugging Face Hub (fp32 weights, GPT-2 tokenizer files).
# Pinned so that a rerun trains the same weights; only used when the model comes from the Hub.
MODEL_REVISION = "47e169305d2e8376be1d31e765533382721b2cc1"


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _sagemaker_path(variable: str, fallback: str, help_text: str) -> Any:
    """A folder argument that defaults to the SageMaker variable, else to the container's standard folder."""
    return field(default_factory=lambda: _env(variable, fallback), metadata={"help": f"{help_text} ({variable})."})


def _require(ok: bool, argument: str, expected: str, got: object) -> None:
    if not ok:
        raise ValueError(f"--{argument}: expected {expected}, got {got!r}")


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default_factory=lambda: _env("SM_CHANNEL_MODEL", MODEL_ID),
        metadata={
            "help": "Hub id or local folder of the base model. Defaults to the `model` channel "
            f"(SM_CHANNEL_MODEL) when the job has one (network-isolated jobs), else {MODEL_ID}."
        },
    )
    model_revision: str = field(
        default=MODEL_REVISION, metadata={"help": "Hub revision (commit) of the base model; ignored for a folder."}
    )
    attn_implementation: Literal["sdpa", "eager"] = field(
        default="sdpa",
        metadata={"help": "Attention kernel: sdpa (torch scaled_dot_product_attention) or eager (reference)."},
    )

    def __post_init__(self) -> None:
        _require(bool(self.model_name_or_path), "model_name_or_path", "a Hub id or a folder", self.model_name_or_path)
        _require(bool(self.model_revision), "model_revision", "a revision", self.model_revision)
        _require(
            self.attn_implementation in ("sdpa", "eager"),
            "attn_implementation",
            "sdpa or eager",
            self.attn_implementation,
        )


@dataclass
class DataArguments:
    train_dir: str = _sagemaker_path("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train", "Folder of .txt files to train on")
    validation_dir: str = _sagemaker_path(
        "SM_CHANNEL_VALIDATION", "/opt/ml/input/data/validation", "Folder of .txt files for eval loss and perplexity"
    )
    block_size: int = field(
        default=1024,
        metadata={"help": "Tokens per training sequence; documents are packed into blocks of this length."},
    )

    def __post_init__(self) -> None:
        _require(
            self.block_size >= 2, "block_size", "an integer >= 2 (at most the model's n_positions)", self.block_size
        )


@dataclass
class FinetuneArguments:
    method: Literal["full", "lora"] = field(
        default="full",
        metadata={"help": "full: train every weight (FSDP-sharded across GPUs); lora: train low-rank adapters only."},
    )
    epochs: float = field(
        default=3.0, metadata={"help": "Passes over the training blocks (used when max_steps is -1)."}
    )
    max_steps: int = field(default=-1, metadata={"help": "Optimizer steps to train; -1 trains for --epochs."})
    learning_rate: float = field(default=2e-5, metadata={"help": "Peak AdamW learning rate (LoRA likes ~1e-4)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay (not applied to biases/norms)."})
    warmup_ratio: float = field(default=0.03, metadata={"help": "Fraction of the steps spent warming up the LR."})
    lr_scheduler_type: Literal["linear", "cosine", "constant_with_warmup"] = field(
        default="linear", metadata={"help": "Learning-rate decay after the warmup."}
    )
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "Blocks per GPU per micro-step."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Micro-steps per optimizer step."})
    precision: Literal["auto", "fp16", "bf16", "fp32"] = field(
        default="auto",
        metadata={
            "help": "Compute precision; auto: bf16 on compute capability >= 8, fp16 (+loss scaling) below, fp32 on CPU."
        },
    )
    gradient_checkpointing: bool = field(
        default=True, metadata={"help": "Recompute activations in the backward pass to save memory."}
    )
    gradient_checkpointing_every: int = field(
        default=1,
        metadata={
            "help": "With --gradient_checkpointing: recompute only every n-th transformer block (1: every block); "
            "a larger n recomputes less and needs more memory."
        },
    )
    compile_blocks: bool = field(
        default=False,
        metadata={
            "help": "torch.compile each transformer block (the blocks share their graphs); the first steps compile."
        },
    )
    cudnn_attention_first: bool = field(
        default=False,
        metadata={"help": "Put cuDNN's fused attention first in SDPA's kernel order (sm_80 and newer use it)."},
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(
        default=0.0, metadata={"help": "Dropout on the LoRA branch input (peft default 0; >0 copies every input)."}
    )
    seed: int = field(default=42, metadata={"help": "Seed for initialisation and data order."})
    logging_steps: int = field(default=10, metadata={"help": "Print train metrics every this many steps."})
    eval_every_steps: int = field(
        default=0,
        metadata={"help": "Also evaluate every this many steps (0: only before the first and after the last step)."},
    )
    checkpoint_dir: str = field(
        default="/opt/ml/checkpoints",
        metadata={
            "help": "Where checkpoints go (in a subfolder named TRAINING_JOB_NAME on SageMaker); SageMaker syncs it "
            "with the job's checkpoint S3 URI."
        },
    )
    checkpoint_every_steps: int = field(
        default=200, metadata={"help": "Checkpoint every this many steps and after the last (0: never)."}
    )
    keep_checkpoints: int = field(default=2, metadata={"help": "Newest checkpoints to keep (1 or more)."})
    model_dir: str = _sagemaker_path("SM_MODEL_DIR", "/opt/ml/model", "Where the fine-tuned Hugging Face model goes")
    output_data_dir: str = _sagemaker_path("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data", "Where metrics.json goes")

    def __post_init__(self) -> None:
        _require(self.method in ("full", "lora"), "method", "full or lora", self.method)
        _require(math.isfinite(self.epochs) and self.epochs > 0, "epochs", "a number > 0", self.epochs)
        _require(self.max_steps == -1 or self.max_steps > 0, "max_steps", "-1 or an integer > 0", self.max_steps)
        _require(0 < self.learning_rate < 1, "learning_rate", "a number in (0, 1)", self.learning_rate)
        _require(self.weight_decay >= 0, "weight_decay", "a number >= 0", self.weight_decay)
        _require(0 <= self.warmup_ratio < 1, "warmup_ratio", "a number in [0, 1)", self.warmup_ratio)
        _require(
            self.lr_scheduler_type in ("linear", "cosine", "constant_with_warmup"),
            "lr_scheduler_type",
            "linear, cosine or constant_with_warmup",
            self.lr_scheduler_type,
        )
        _require(self.max_grad_norm > 0, "max_grad_norm", "a number > 0", self.max_grad_norm)
        _require(
            self.per_device_train_batch_size >= 1,
            "per_device_train_batch_size",
            "an integer >= 1",
            self.per_device_train_batch_size,
        )
        _require(
            self.gradient_accumulation_steps >= 1,
            "gradient_accumulation_steps",
            "an integer >= 1",
            self.gradient_accumulation_steps,
        )
        _require(
            self.precision in ("auto", "fp16", "bf16", "fp32"), "precision", "auto, fp16, bf16 or fp32", self.precision
        )
        _require(
            self.gradient_checkpointing_every >= 1,
            "gradient_checkpointing_every",
            "an integer >= 1",
            self.gradient_checkpointing_every,
        )
        _require(self.lora_r >= 1, "lora_r", "an integer >= 1", self.lora_r)
        _require(self.lora_alpha >= 1, "lora_alpha", "an integer >= 1", self.lora_alpha)
        _require(0 <= self.lora_dropout < 1, "lora_dropout", "a number in [0, 1)", self.lora_dropout)
        _require(self.seed >= 0, "seed", "an integer >= 0", self.seed)
        _require(self.logging_steps >= 1, "logging_steps", "an integer >= 1", self.logging_steps)
        _require(self.eval_every_steps >= 0, "eval_every_steps", "an integer >= 0", self.eval_every_steps)
        _require(
            self.checkpoint_every_steps >= 0, "checkpoint_every_steps", "an integer >= 0", self.checkpoint_every_steps
        )
        _require(self.keep_checkpoints >= 1, "keep_checkpoints", "an integer >= 1", self.keep_checkpoints)


# Hyperparameters that SageMaker itself may add to a job's (tuning jobs: the objective's name), not ours to use.
IGNORED_HYPERPARAMETERS = ("_tuning_objective_metric",)


def _without_ignored(argv: list[str]) -> list[str]:
    kept: list[str] = []
    skip_value = False
    for arg in argv:
        name = arg.removeprefix("--").split("=", 1)[0]
        if skip_value:
            skip_value = False
        elif arg.startswith("--") and name in IGNORED_HYPERPARAMETERS:
            skip_value = "=" not in arg
        else:
            kept.append(arg)
    return kept


def parse_args(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, FinetuneArguments]:
    """Parse `--key value` arguments; a bad or unknown one exits with status 2 and a message naming it."""
    parser = HfArgumentParser((ModelArguments, DataArguments, FinetuneArguments))  # type: ignore[arg-type]
    try:
        model_args, data_args, args = parser.parse_args_into_dataclasses(
            args=_without_ignored(sys.argv[1:] if argv is None else argv)
        )
    except ValueError as error:  # raised by __post_init__ and for unknown arguments
        parser.error(str(error))
    return model_args, data_args, args
