"""train.py as a SageMaker job runs it, SIGKILLed halfway through writing its second checkpoint: a spot interruption
at a known point. (A SIGKILL sent from outside when the first checkpoint is logged lands wherever the run has got to
by then; on a busy machine that was after the last checkpoint, and the resumption had nothing left to resume.)

Real: train.py, finetune.py and checkpointing.py, unchanged, with the arguments given. Stand-in: the interruption, a
wrapper around torch.save (in a train.py run only checkpointing.save calls it) that kills this process as soon as
the second checkpoint's first file is written, so its temporary folder is left half-written.
Usage: python interrupt.py <train.py arguments>
"""

import os
import runpy
import signal
import sys
from pathlib import Path
from typing import Any

import torch

TRAINING = Path(__file__).resolve().parents[2] / "training"
FILES_PER_CHECKPOINT = 3  # model.pt, optimizer.pt, state.pt (the manifest is JSON)

_save = torch.save
_written: list[Path] = []


def _save_then_die(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
    _save(obj, f, *args, **kwargs)
    _written.append(Path(f))
    if len(_written) == FILES_PER_CHECKPOINT + 1:
        folder = _written[-1].parent
        print(f"interrupted while writing {folder} (written: {', '.join(sorted(p.name for p in folder.iterdir()))})")
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    torch.save = _save_then_die
    sys.path.insert(0, str(TRAINING))
    sys.argv[0] = str(TRAINING / "train.py")
    runpy.run_path(sys.argv[0], run_name="__main__")
