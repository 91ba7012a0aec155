"""SageMaker entry point: fine-tune GPT-J-6B on the judgments (source_dir training/, entry point train.py).

Container: torch >= 2.6 in a CUDA 12.x build that still includes sm_70, because the job runs on ml.p3dn.24xlarge
(8x V100) and transformers 5.x needs torch >= 2.6: the AWS PyTorch training DLC 2.8.0 with CUDA 12.9 (finetune.py
logs `torch.cuda.get_arch_list()` and stops when it lacks the GPU's kernels). requirements.txt adds transformers 5.24
(GPT-J through the shared attention interface, so SDPA works), peft and accelerate on top of the container's torch.

Launch: one process per GPU, through torchrun. Under a launcher (SageMaker's `torch_distributed`, or torchrun by
hand) the work starts at once; started as plain `python train.py ...` where SM_NUM_GPUS or SM_HOSTS say there
are several GPUs or hosts, this script re-executes itself under torchrun, one node per host, rank 0's host as
the rendezvous. The same command runs on a laptop with the SM_* variables pointing at local folders.
Arguments: arguments.py (`python train.py --help`); the training itself: finetune.py.
"""

import json
import os
import sys
from pathlib import Path

TORCHRUN_PORT = 29500


def relaunch_with_torchrun() -> None:
    """Without a launcher, start one process per GPU on every SageMaker host (this script under torchrun)."""
    if "LOCAL_RANK" in os.environ:
        return
    hosts = json.loads(os.environ.get("SM_HOSTS") or "[]") or ["localhost"]
    per_host = max(int(os.environ.get("SM_NUM_GPUS") or 0), 1)
    if len(hosts) * per_host == 1:
        return
    command = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={len(hosts)}", f"--nproc_per_node={per_host}"]
    if len(hosts) == 1:
        command.append("--standalone")
    else:
        node_rank = hosts.index(os.environ["SM_CURRENT_HOST"])
        command += [f"--node_rank={node_rank}", f"--master_addr={hosts[0]}", f"--master_port={TORCHRUN_PORT}"]
    # Replaces this process: torchrun starts the workers and exits with their status, which SageMaker reports.
    os.execv(sys.executable, [*command, str(Path(sys.argv[0]).resolve()), *sys.argv[1:]])  # noqa: S606


def main() -> None:
    relaunch_with_torchrun()
    # Imported only now, so that a process that becomes torchrun never spends seconds loading torch.
    import finetune

    finetune.main()


if __name__ == "__main__":
    main()
