"""Training text: read the channels, split into documents, tokenize once, pack into fixed-length blocks.

The data order is a pure function of (seed, optimizer step), so a resumed run continues exactly where the
checkpoint stopped without saving any loader state.
"""

import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

# The dataset prep writes the judgments one after another, each followed by a line of 65 dashes
# ("\n" + "-" * 65 + "\n", the original notebook's format).
DOCUMENT_SEPARATOR = re.compile(r"^-{65}$", re.MULTILINE)


def read_documents(directory: Path) -> list[str]:
    """Every non-empty document of every .txt file under directory, in sorted file order."""
    if not directory.is_dir():
        raise FileNotFoundError(f"data folder {directory} does not exist")
    files = sorted(path for path in directory.rglob("*.txt") if path.is_file())
    documents = [
        document.strip()
        for path in files
        for document in DOCUMENT_SEPARATOR.split(path.read_text(encoding="utf-8"))
        if document.strip()
    ]
    if not documents:
        raise ValueError(f"no text in the .txt files of {directory} ({len(files)} files)")
    return documents


def pack(token_ids: list[list[int]], eos_token_id: int, block_size: int) -> torch.Tensor:
    """Concatenate the documents, each followed by EOS, and cut into [num_blocks, block_size] (remainder dropped)."""
    stream = torch.cat([torch.tensor([*ids, eos_token_id], dtype=torch.int64) for ids in token_ids])
    num_blocks = stream.numel() // block_size
    if num_blocks == 0:
        raise ValueError(f"{stream.numel()} tokens are fewer than one block of --block_size {block_size}")
    return stream[: num_blocks * block_size].view(num_blocks, block_size)


def tokenize_and_pack(directory: Path, tokenizer: PreTrainedTokenizerBase, block_size: int) -> torch.Tensor:
    documents = read_documents(directory)
    # verbose=False: whole judgments are longer than the model's context, which is the point of packing.
    token_ids = tokenizer(documents, add_special_tokens=False, verbose=False)["input_ids"]
    return pack(token_ids, tokenizer.eos_token_id, block_size)


@functools.lru_cache(maxsize=2)
def _permutation(num_blocks: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(num_blocks, generator=torch.Generator().manual_seed(seed + epoch))


@dataclass(frozen=True)
class BatchPlan:
    """Which blocks each rank trains on at each optimizer step: a fresh shuffle every epoch."""

    num_blocks: int
    world_size: int
    batch_size: int
    accumulation: int
    seed: int

    @property
    def blocks_per_step(self) -> int:
        return self.world_size * self.batch_size * self.accumulation

    @property
    def steps_per_epoch(self) -> int:
        return self.num_blocks // self.blocks_per_step

    def total_steps(self, epochs: float, max_steps: int) -> int:
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"{self.num_blocks} training blocks are fewer than one optimizer step needs ({self.blocks_per_step}"
                " = GPUs x --per_device_train_batch_size x --gradient_accumulation_steps); lower those or --block_size"
            )
        return max_steps if max_steps > 0 else math.ceil(epochs * self.steps_per_epoch)

    def position(self, step: int) -> tuple[int, int]:
        """(epoch, step within the epoch) of a 0-based optimizer step."""
        return divmod(step, self.steps_per_epoch)

    def block_indices(self, step: int, rank: int) -> torch.Tensor:
        """[accumulation, batch_size] block indices for this rank; the ranks together cover blocks_per_step."""
        epoch, index = self.position(step)
        start = index * self.blocks_per_step
        chunk = _permutation(self.num_blocks, self.seed, epoch)[start : start + self.blocks_per_step]
        return chunk.view(self.accumulation, self.world_size, self.batch_size)[:, rank]


def eval_batches(
    num_blocks: int, world_size: int, rank: int, batch_size: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(block indices, valid mask) batches for this rank. Every rank gets the same number of batches, as FSDP needs
    (each forward is a collective): the last ones are padded with block 0, masked out of the loss."""
    per_rank = math.ceil(num_blocks / world_size)
    indices = torch.arange(per_rank) * world_size + rank
    valid = indices < num_blocks
    indices = torch.where(valid, indices, 0)
    return list(zip(torch.split(indices, batch_size), torch.split(valid, batch_size), strict=True))
