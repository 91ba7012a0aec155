"""Checkpoint folders for resuming after a spot interruption.

Layout: `<checkpoint_dir>/step-00000200/{model.pt, optimizer.pt, state.pt, manifest.json}`. A checkpoint is
written to a hidden temporary folder and renamed into place, and its manifest (file names and sizes) is written
last, so a folder that a kill or a partial S3 sync left behind is recognised as incomplete and skipped.
Only rank 0 calls these functions; the distributed gathering happens in train.py.
"""

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch

MANIFEST = "manifest.json"
_STEP_FOLDER = re.compile(r"^step-(\d{8})$")
_TEMPORARY_PREFIX = ".tmp-"


def _step_folders(directory: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every checkpoint folder, newest first."""
    if not directory.is_dir():
        return []
    found = ((_STEP_FOLDER.match(path.name), path) for path in directory.iterdir() if path.is_dir())
    return sorted(((int(match.group(1)), path) for match, path in found if match), reverse=True)


def is_complete(folder: Path) -> bool:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        return all((folder / name).stat().st_size == size for name, size in manifest["files"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def latest(directory: Path) -> Path | None:
    """The newest complete checkpoint folder, if any."""
    return next((folder for _, folder in _step_folders(directory) if is_complete(folder)), None)


def save(directory: Path, step: int, files: dict[str, Any], keep: int) -> Path:
    """Write each object of files with torch.save into step-<step>/, atomically; keep the newest `keep`."""
    final = directory / f"step-{step:08d}"
    temporary = directory / f"{_TEMPORARY_PREFIX}{final.name}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    for name, obj in files.items():
        torch.save(obj, temporary / name)
    sizes = {name: (temporary / name).stat().st_size for name in files}
    (temporary / MANIFEST).write_text(json.dumps({"step": step, "files": sizes}))
    shutil.rmtree(final, ignore_errors=True)  # only exists when the same step is saved twice
    temporary.replace(final)
    for _, folder in _step_folders(directory)[keep:]:
        shutil.rmtree(folder, ignore_errors=True)
    return final


def remove_temporary(directory: Path) -> None:
    """Delete the half-written folders of an interrupted save."""
    if directory.is_dir():
        for path in directory.glob(f"{_TEMPORARY_PREFIX}*"):
            shutil.rmtree(path, ignore_errors=True)


def load(folder: Path, name: str) -> Any:
    return torch.load(folder / name, map_location="cpu", weights_only=True)
