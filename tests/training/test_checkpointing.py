"""Atomic checkpoint folders: the newest complete one wins, incomplete ones are skipped, old ones pruned."""

import dataclasses
import json
import re
from pathlib import Path

import checkpointing
import finetune
import pytest
import torch
from arguments import FinetuneArguments
from data import BatchPlan
from transformers import AutoModelForCausalLM


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
    args = FinetuneArguments(checkpoint_dir=str(tmp_path), learning_rate=1e-3, max_steps=10)
    plan = BatchPlan(num_blocks=40, world_size=1, batch_size=2, accumulation=1, seed=0)
    schedule = finetune.Schedule.of(args, plan)

    def setup() -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        model = AutoModelForCausalLM.from_pretrained(tiny_model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
        return model, optimizer, schedule.scheduler(optimizer)

    model, optimizer, scheduler = setup()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    batch = torch.randint(0, model.config.vocab_size, (2, 16))
    params = list(model.parameters())
    finetune.train_step(model, [batch], optimizer, scaler, params, 1.0, finetune.contextlib.nullcontext, env)
    scheduler.step()
    history = [{"loss": 1.0, "step": 1}]
    finetune.save_checkpoint(1, model, optimizer, scheduler, scaler, plan, schedule, history, args, env)

    fresh, fresh_optimizer, fresh_scheduler = setup()
    step, restored_history = finetune.resume(fresh, fresh_optimizer, fresh_scheduler, scaler, plan, schedule, args, env)
    assert (step, restored_history, fresh_scheduler.last_epoch) == (1, history, 1)
    for trained, restored in zip(model.parameters(), fresh.parameters(), strict=True):
        torch.testing.assert_close(trained, restored)
    assert int(next(iter(fresh_optimizer.state.values()))["step"]) == 1

    other = BatchPlan(num_blocks=40, world_size=1, batch_size=4, accumulation=1, seed=0)
    with pytest.raises(ValueError, match="written by another configuration"):
        finetune.resume(*setup(), scaler, other, schedule, args, env)


@pytest.mark.parametrize(
    ("changed", "value"),
    [
        ("max_steps", 20),
        ("epochs", 5.0),
        ("learning_rate", 2e-3),
        ("warmup_ratio", 0.5),
        ("lr_scheduler_type", "cosine"),
    ],
)
def test_a_checkpoint_resumes_only_under_the_schedule_it_was_written_under(
    tmp_path: Path, tiny_model: Path, changed: str, value: object
) -> None:
    """Resumed under another schedule, the restored learning rate and step count would belong to the old one
    (a finished linear schedule resumed with a larger --max_steps trained its next step at learning rate 0)."""
    env = finetune.Distributed(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
    # max_steps -1: the run's length comes from --epochs; 40 blocks of 2 are 20 steps an epoch.
    written = FinetuneArguments(checkpoint_dir=str(tmp_path), max_steps=-1 if changed == "epochs" else 10, epochs=1.0)
    plan = BatchPlan(num_blocks=40, world_size=1, batch_size=2, accumulation=1, seed=0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=written.learning_rate)
    schedule = finetune.Schedule.of(written, plan)
    scheduler = schedule.scheduler(optimizer)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    finetune.save_checkpoint(4, model, optimizer, scheduler, scaler, plan, schedule, [], written, env)

    resumed = dataclasses.replace(written, **{changed: value})
    other = finetune.Schedule.of(resumed, plan)
    assert other != schedule
    optimizer = torch.optim.AdamW(model.parameters(), lr=resumed.learning_rate)
    expected = re.escape(f"'{changed}': {value!r}") + ".*Resume with the arguments it was written with"
    with pytest.raises(ValueError, match=f"written under another learning-rate schedule: .*{expected}"):
        finetune.resume(model, optimizer, other.scheduler(optimizer), scaler, plan, other, resumed, env)


def test_the_same_schedule_from_other_arguments_is_the_same_schedule() -> None:
    """--max_steps 20 and one epoch of 20 steps train the same learning rates: either resumes the other."""
    plan = BatchPlan(num_blocks=40, world_size=1, batch_size=2, accumulation=1, seed=0)
    by_epochs = finetune.Schedule.of(FinetuneArguments(max_steps=-1, epochs=1.0), plan)
    assert by_epochs == finetune.Schedule.of(FinetuneArguments(max_steps=20, epochs=3.0), plan)
    assert (by_epochs.total_steps, by_epochs.warmup_steps) == (20, 1)
