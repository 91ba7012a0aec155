"""Reading, packing and ordering the training text."""

from pathlib import Path

import data
import pytest
import torch
from data import BatchPlan, eval_batches, pack, read_documents

from lambdas.dataset_prep import SEPARATOR
from tests.training.conftest import TextChannels


def test_documents_are_split_on_the_prep_separator_across_sorted_files(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("third" + SEPARATOR)
    (tmp_path / "a.txt").write_text("first\nline two" + SEPARATOR + "second" + SEPARATOR + "\n" + SEPARATOR)
    (tmp_path / "notes.md").write_text("not training text")
    assert read_documents(tmp_path) == ["first\nline two", "second", "third"]


def test_the_real_prep_output_reads_as_its_documents(text: TextChannels) -> None:
    documents = read_documents(text.train)
    assert len(documents) == 16
    assert all(document.startswith("Judgment") and "-" * 65 not in document for document in documents)


def test_missing_or_empty_folders_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_documents(tmp_path / "absent")
    (tmp_path / "empty.txt").write_text(SEPARATOR)
    with pytest.raises(ValueError, match=r"no text in the \.txt files"):
        read_documents(tmp_path)


def test_pack_separates_documents_with_eos_and_drops_the_remainder() -> None:
    blocks = pack([[1, 2, 3], [4, 5], [6, 7, 8, 9]], eos_token_id=0, block_size=4)
    assert blocks.tolist() == [[1, 2, 3, 0], [4, 5, 0, 6], [7, 8, 9, 0]]
    with pytest.raises(ValueError, match="fewer than one block of --block_size 64"):
        pack([[1, 2]], eos_token_id=0, block_size=64)


def test_each_epoch_visits_blocks_once_and_ranks_split_each_step() -> None:
    plan = BatchPlan(num_blocks=50, world_size=2, batch_size=3, accumulation=2, seed=1)
    assert (plan.blocks_per_step, plan.steps_per_epoch, plan.total_steps(2.5, -1)) == (12, 4, 10)
    for epoch in range(2):
        steps = range(epoch * 4, epoch * 4 + 4)
        seen = torch.cat([plan.block_indices(step, rank).flatten() for step in steps for rank in (0, 1)])
        assert len(set(seen.tolist())) == 48  # no block twice in an epoch
    assert not torch.equal(plan.block_indices(0, 0), plan.block_indices(4, 0))  # reshuffled every epoch
    before = plan.block_indices(5, 1)
    data._permutation.cache_clear()  # a resumed process starts without the cache: the order comes from the seed
    assert torch.equal(before, BatchPlan(50, 2, 3, 2, seed=1).block_indices(5, 1))  # resumable
    assert plan.position(9) == (2, 1)


def test_the_order_depends_on_blocks_per_step_not_on_how_ranks_share_it() -> None:
    one = BatchPlan(num_blocks=40, world_size=1, batch_size=2, accumulation=1, seed=3)
    two = BatchPlan(num_blocks=40, world_size=2, batch_size=1, accumulation=1, seed=3)
    for step in range(25):
        split = torch.cat([two.block_indices(step, rank) for rank in (0, 1)], dim=1)
        assert torch.equal(one.block_indices(step, 0), split)


def test_too_few_blocks_for_one_step_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"3 training blocks are fewer than one optimizer step needs \(8"):
        BatchPlan(num_blocks=3, world_size=2, batch_size=4, accumulation=1, seed=0).total_steps(1, -1)


def test_eval_batches_cover_every_block_once_with_equal_counts_per_rank() -> None:
    per_rank = [eval_batches(num_blocks=7, world_size=3, rank=rank, batch_size=2) for rank in range(3)]
    assert len({len(batches) for batches in per_rank}) == 1  # FSDP: the same number of forwards everywhere
    valid = [int(i) for batches in per_rank for indices, mask in batches for i in indices[mask]]
    assert sorted(valid) == list(range(7))
