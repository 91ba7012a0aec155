"""SageMaker instance types this app accepts, with the facts the stacks derive settings from.

The table is offline on purpose: synth never asks AWS which types exist. It lists the GPU types that make
sense for a 6-billion-parameter model (and a few CPU types for the prep-free smoke tests of a pipeline);
adding a row is the way to allow another type.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InstanceFacts:
    gpus: int
    gpu_memory_gib: int  # per GPU
    gpu_arch: str  # "volta", "turing", "ampere", "ada", "hopper", "" for CPU
    local_nvme: bool  # SageMaker rejects a volume KMS key on instance types with instance storage

    @property
    def supports_bf16(self) -> bool:
        return self.gpu_arch in {"ampere", "ada", "hopper"}


TRAINING_INSTANCE_TYPES: dict[str, InstanceFacts] = {
    "ml.p3.2xlarge": InstanceFacts(1, 16, "volta", False),
    "ml.p3.8xlarge": InstanceFacts(4, 16, "volta", False),
    "ml.p3.16xlarge": InstanceFacts(8, 16, "volta", False),
    "ml.p3dn.24xlarge": InstanceFacts(8, 32, "volta", True),
    "ml.g5.12xlarge": InstanceFacts(4, 24, "ampere", True),
    "ml.g5.24xlarge": InstanceFacts(4, 24, "ampere", True),
    "ml.g5.48xlarge": InstanceFacts(8, 24, "ampere", True),
    "ml.p4d.24xlarge": InstanceFacts(8, 40, "ampere", True),
    "ml.p4de.24xlarge": InstanceFacts(8, 80, "ampere", True),
    "ml.p5.48xlarge": InstanceFacts(8, 80, "hopper", True),
    "ml.p5e.48xlarge": InstanceFacts(8, 141, "hopper", True),
    "ml.g6e.12xlarge": InstanceFacts(4, 48, "ada", True),
    "ml.g6e.48xlarge": InstanceFacts(8, 48, "ada", True),
}

HOSTING_INSTANCE_TYPES: dict[str, InstanceFacts] = {
    "ml.g4dn.xlarge": InstanceFacts(1, 16, "turing", True),
    "ml.g4dn.2xlarge": InstanceFacts(1, 16, "turing", True),
    "ml.g4dn.12xlarge": InstanceFacts(4, 16, "turing", True),
    "ml.g5.xlarge": InstanceFacts(1, 24, "ampere", True),
    "ml.g5.2xlarge": InstanceFacts(1, 24, "ampere", True),
    "ml.g5.4xlarge": InstanceFacts(1, 24, "ampere", True),
    "ml.g5.8xlarge": InstanceFacts(1, 24, "ampere", True),
    "ml.g5.12xlarge": InstanceFacts(4, 24, "ampere", True),
    "ml.g5.24xlarge": InstanceFacts(4, 24, "ampere", True),
    "ml.g5.48xlarge": InstanceFacts(8, 24, "ampere", True),
    "ml.g6.xlarge": InstanceFacts(1, 24, "ada", True),
    "ml.g6.2xlarge": InstanceFacts(1, 24, "ada", True),
    "ml.g6.12xlarge": InstanceFacts(4, 24, "ada", True),
    "ml.g6e.xlarge": InstanceFacts(1, 48, "ada", True),
    "ml.g6e.2xlarge": InstanceFacts(1, 48, "ada", True),
    "ml.g6e.12xlarge": InstanceFacts(4, 48, "ada", True),
    "ml.p4d.24xlarge": InstanceFacts(8, 40, "ampere", True),
    "ml.p5.48xlarge": InstanceFacts(8, 80, "hopper", True),
}
