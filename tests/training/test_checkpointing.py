"""Atomic checkpoint folders: the newest complete one wins, incomplete ones are skipped, old ones pruned."""

import json
from pathlib import Path

import checkpointing
import torch


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
