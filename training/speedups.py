"""Throughput options that train.py runs and bench.py measures, in one place so the benchmark measures the script.

Activation checkpointing on every n-th GPTJBlock (recompute less, store more), torch.compile on each block (the
blocks share their graphs: a 28-block model with every 2nd block checkpointed compiled 5 graphs for training and
evaluation, torch 2.13 on the CPU), and SDPA's kernel order with cuDNN's fused attention first.
"""

import contextlib
import inspect
from collections.abc import Iterator

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import PreTrainedModel
from transformers.models.gptj.modeling_gptj import GPTJBlock

CUDNN_FIRST = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
# sdpa_kernel takes an order (set_priority) from torch 2.6 on; older releases fail on it with a bare TypeError.
SDPA_PRIORITY_ORDER = "set_priority" in inspect.signature(sdpa_kernel).parameters


def checkpoint_activations(model: PreTrainedModel, every_n_blocks: int) -> None:
    """Recompute the activations of every n-th block in the backward pass (1: every block; 0: none)."""
    if every_n_blocks < 0:
        raise ValueError(f"every_n_blocks: expected an integer >= 0, got {every_n_blocks}")
    if every_n_blocks:
        # Non-reentrant: works with frozen inputs (LoRA), FSDP, DDP and compiled blocks.
        model.activation_checkpointing_enable({"use_reentrant": False}, every_n_layers=every_n_blocks)


def gptj_blocks(model: torch.nn.Module) -> list[GPTJBlock]:
    """The transformer blocks: the unit of compilation, checkpointing and FSDP sharding."""
    return [module for module in model.modules() if isinstance(module, GPTJBlock)]


def compile_blocks(model: torch.nn.Module) -> int:
    """torch.compile every GPTJBlock in place (after LoRA is added, before FSDP shards); returns how many."""
    blocks = gptj_blocks(model)
    for block in blocks:
        block.compile()
    return len(blocks)


@contextlib.contextmanager
def attention_kernels(cudnn_first: bool) -> Iterator[None]:
    """SDPA's kernel order for the forward passes inside: cuDNN attention first, or PyTorch's default order.

    A kernel that cannot run the inputs (cuDNN attention before sm_80, for one) is passed over for the next."""
    if not cudnn_first:
        yield
        return
    if not SDPA_PRIORITY_ORDER:
        raise RuntimeError(
            "--cudnn_attention_first needs torch 2.6 or newer (an SDPA kernel order); "
            f"this is torch {torch.__version__}"
        )
    with sdpa_kernel(CUDNN_FIRST, set_priority=True):
        yield


@contextlib.contextmanager
def forward_context(device_type: str, autocast_dtype: torch.dtype | None, cudnn_first: bool) -> Iterator[None]:
    """What every forward pass of train.py runs under: the SDPA kernel order and, unless None, autocast."""
    autocast = torch.autocast(device_type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
    with attention_kernels(cudnn_first), autocast:
        yield
