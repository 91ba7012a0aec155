"""Atomic checkpoint folders: the newest complete one wins, incomplete ones are skipped, old ones pruned."""

import json
from pathlib import Path

import checkpointing
import finetune
import pytest
import torch
from arguments import FinetuneArguments
from data import BatchPlan
from transformers import AutoModelForCausalLM, get_scheduler


def save(directory: Path, step: int, keep: int = 2) -> Path:
    return checkpointing.save(directory, step, {"model.pt": {"w": torch.full((3,), float(step))}}, keep=keep)


def test_the_newest_complete_checkpoint_is_found_and_old_ones_are_pruned(tmp_path: Path) -> None:
    assert checkpointing.latest(tmp_path / "none") is None
    for step in (2, 4, 6):
        save(tmp_path, step)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["step-00000004", "step-00000006"]
    newest = checkpointing.latest(tmp_path)
    assert newest == tmp_path / "step-00000006"
    assert checkpointing.load(newest, "model.pt")["w"].tolist() == [6.0] * 3
    assert json.loads((newest / checkpointing.MANIFEST).read_text())["step"] == 6


def test_incomplete_checkpoints_are_skipped(tmp_path: Path) -> None:
    save(tmp_path, 2, keep=5)
    truncated = save(tmp_path, 4, keep=5)
    (truncated / "model.pt").write_bytes(b"partial")
    unfinished = save(tmp_path, 6, keep=5)
    (unfinished / checkpointing.MANIFEST).unlink()  # the manifest is written last
    assert checkpointing.latest(tmp_path) == tmp_path / "step-00000002"


def test_a_half_written_save_is_invisible_and_cleaned_up(tmp_path: Path) -> None:
    save(tmp_path, 2)
    half = tmp_path / ".tmp-step-00000004"
    half.mkdir()
    (half / "model.pt").write_bytes(b"partial")
    assert checkpointing.latest(tmp_path) == tmp_path / "step-00000002"
    checkpointing.remove_temporary(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["step-00000002"]


def test_saving_the_same_step_again_replaces_it(tmp_path: Path) -> None:
    save(tmp_path, 2)
    checkpointing.save(tmp_path, 2, {"model.pt": {"w": torch.zeros(1)}}, keep=2)
    assert checkpointing.load(tmp_path / "step-00000002", "model.pt")["w"].tolist() == [0.0]


def test_resume_restores_the_step_and_refuses_another_configuration(tmp_path: Path, tiny_model: Path) -> None:
    env = finetune.Distributed(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
    args = FinetuneArguments(checkpoint_dir=str(tmp_path), learning_rate=1e-3)
    plan = BatchPlan(num_blocks=40, world_size=1, batch_size=2, accumulation=1, seed=0)

    def setup() -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        model = AutoModelForCausalLM.from_pretrained(tiny_model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
        return model, optimizer, get_scheduler("linear", optimizer, num_warmup_steps=0, num_training_steps=10)

    model, optimizer, scheduler = setup()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    batch = torch.randint(0, model.config.vocab_size, (2, 16))
    params = list(model.parameters())
    finetune.train_step(model, [batch], optimizer, scaler, params, 1.0, finetune.contextlib.nullcontext, env)
    scheduler.step()
    finetune.save_checkpoint(1, model, optimizer, scheduler, scaler, plan, [{"loss": 1.0, "step": 1}], args, env)

    fresh, fresh_optimizer, fresh_scheduler = setup()
    step, history = finetune.resume(fresh, fresh_optimizer, fresh_scheduler, scaler, plan, args, env)
    assert (step, history, fresh_scheduler.last_epoch) == (1, [{"loss": 1.0, "step": 1}], 1)
    for trained, restored in zip(model.parameters(), fresh.parameters(), strict=True):
        torch.testing.assert_close(trained, restored)
    assert int(next(iter(fresh_optimizer.state.values()))["step"]) == 1

    other = BatchPlan(num_blocks=40, world_size=1, batch_size=4, accumulation=1, seed=0)
    with pytest.raises(ValueError, match="written by another configuration"):
        finetune.resume(*setup(), scaler, other, args, env)
