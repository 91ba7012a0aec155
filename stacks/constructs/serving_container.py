"""The LMI (vLLM) container's settings for GPT-J-6B, derived from the instance type's facts. Pure: no constructs.

The memory model (an estimate, checked at synth so that a type that cannot hold the model fails before it bills):
GPT-J-6B has 6,053,381,344 parameters, so its 16-bit weights take 11.3 GiB. vLLM reserves
`gpu_memory_utilization` of each GPU, loses some of it to the CUDA context, activations and CUDA graphs, and
pages the rest out as KV cache: 2 (key, value) x 28 layers x 4096 x 2 bytes = 448 KiB per token, 0.875 GiB per
full 2048-token sequence. An instance type qualifies when that cache holds a few full-length sequences at once.

Which GPUs, besides memory: only those whose architecture the image's vLLM has CUDA kernels for
(`VLLM_GPU_ARCHITECTURES` in stacks/serving_image.py, sm_80 and newer, with the sources). Turing (the T4s of
ml.g4dn) is not among them, so a g4dn endpoint is refused at synth, with the same one-line setting error as a type
too small for the model (docs/decisions.md S4, S10). Every architecture left has bf16, so the weights are served
in bf16 everywhere, and vLLM chooses the attention backend itself (FlashAttention from sm_80).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from config import SettingError
from config.instance_types import HOSTING_INSTANCE_TYPES, InstanceFacts
from stacks.serving_image import VLLM_GPU_ARCHITECTURES

GPTJ_PARAMETERS = 6_053_381_344
GPTJ_LAYERS = 28
GPTJ_HIDDEN = 4096
GPTJ_HEADS = 16  # tensor parallelism must divide the heads
GPTJ_CONTEXT = 2048  # n_positions: the longest sequence (prompt + generation) GPT-J was trained for
BYTES_16BIT = 2
GIB = 1024**3

WEIGHTS_GIB = GPTJ_PARAMETERS * BYTES_16BIT / GIB
KV_BYTES_PER_TOKEN = 2 * GPTJ_LAYERS * GPTJ_HIDDEN * BYTES_16BIT
FULL_SEQUENCE_GIB = KV_BYTES_PER_TOKEN * GPTJ_CONTEXT / GIB

# vLLM's own default, set explicitly because the GPU memory alarm's threshold is derived from it.
GPU_MEMORY_UTILIZATION = 0.9
# CUDA context, activations at the prefill budget and CUDA graphs, per GPU (an estimate from vLLM start-up logs
# of 7B models; not measured for this image).
RUNTIME_OVERHEAD_GIB_PER_GPU = 1.5
# Headroom required at synth: the KV cache must hold this many full-context sequences without preemption.
MIN_FULL_SEQUENCES = 4
# Upper bound on concurrent sequences per instance: beyond this, latency grows faster than throughput.
MAX_ROLLING_BATCH_SIZE = 64
# LMI stops loading a model after MODEL_LOADING_TIMEOUT, 1200 s in its image (ENV in serving/docker/lmi.Dockerfile,
# read by PyEnv.java); `option.model_loading_timeout` overrides it. 30 minutes, as docs/serving.md promises for a
# 12 GB Hub download plus loading and CUDA graph capture; the endpoint's startup health check waits a margin longer
# (LMI's configuration guide: set container_startup_health_check_timeout to at least the model loading timeout;
# stacks/constructs/endpoint.py `startup_health_check_seconds` says why longer).
MODEL_LOADING_SECONDS = 1800
# bf16 on every type: each GPU the image has kernels for (sm_80 and newer) has it, and its fp32-sized exponent
# cannot overflow where fp16 can. fp16 was only ever needed for Turing, which is refused now.
DTYPE = "bf16"


@dataclass(frozen=True)
class ContainerSettings:
    """What the LMI container is told (environment variables), and the numbers they come from."""

    tensor_parallel_degree: int
    max_rolling_batch_size: int
    dtype: str = DTYPE
    max_model_len: int = GPTJ_CONTEXT
    gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION
    model_loading_seconds: int = MODEL_LOADING_SECONDS

    def environment(self) -> dict[str, str]:
        """LMI settings common to both endpoints (the model source adds HF_MODEL_ID and friends).

        Names from the LMI vLLM user guide: async mode (the default and recommended handler since LMI v17) talks
        to vLLM's engine through its OpenAI modules and still accepts the LMI `{"inputs", "parameters"}` schema.
        They are set explicitly so that a container default changing under the same tag cannot change the model.
        """
        return {
            "OPTION_ASYNC_MODE": "true",
            "OPTION_ROLLING_BATCH": "disable",
            "OPTION_ENTRYPOINT": "djl_python.lmi_vllm.vllm_async_service",
            "OPTION_TENSOR_PARALLEL_DEGREE": str(self.tensor_parallel_degree),
            "OPTION_DTYPE": self.dtype,
            "OPTION_MAX_MODEL_LEN": str(self.max_model_len),
            "OPTION_MAX_ROLLING_BATCH_SIZE": str(self.max_rolling_batch_size),
            "OPTION_GPU_MEMORY_UTILIZATION": str(self.gpu_memory_utilization),
            "OPTION_MODEL_LOADING_TIMEOUT": str(self.model_loading_seconds),
        }


def kv_cache_gib(facts: InstanceFacts) -> float:
    """GiB left for the KV cache on one instance once the weights (sharded over all GPUs) are loaded."""
    usable = facts.gpus * (facts.gpu_memory_gib * GPU_MEMORY_UTILIZATION - RUNTIME_OVERHEAD_GIB_PER_GPU)
    return usable - WEIGHTS_GIB


def holds_gptj(facts: InstanceFacts) -> bool:
    """Whether one instance's GPUs hold the sharded weights and KV cache for MIN_FULL_SEQUENCES full sequences."""
    return (
        facts.gpus > 0
        and GPTJ_HEADS % facts.gpus == 0
        and kv_cache_gib(facts) >= MIN_FULL_SEQUENCES * FULL_SEQUENCE_GIB
    )


def image_runs_on(facts: InstanceFacts) -> bool:
    """Whether the serving image's vLLM has CUDA kernels for the instance's GPUs (none at all for the others)."""
    return facts.gpu_arch in VLLM_GPU_ARCHITECTURES


def serves_gptj(facts: InstanceFacts) -> bool:
    return image_runs_on(facts) and holds_gptj(facts)


def suitable_instance_types() -> list[str]:
    return sorted(name for name, facts in HOSTING_INSTANCE_TYPES.items() if serves_gptj(facts))


def _expected() -> str:
    """What the setting error says is expected, and why: both reasons, derived from the constants they come from."""
    oldest = min(
        (cap for caps in VLLM_GPU_ARCHITECTURES.values() for cap in caps), key=lambda cap: int(cap.removeprefix("sm_"))
    )
    without = {name: facts for name, facts in HOSTING_INSTANCE_TYPES.items() if not image_runs_on(facts)}
    refused = ""
    if without:
        architectures = ", ".join(sorted({facts.gpu_arch.capitalize() for facts in without.values()}))
        families = ", ".join(sorted({name.rsplit(".", 1)[0] for name in without}))
        refused = f", none for {architectures}: {families}"
    return (
        f"one of {', '.join(suitable_instance_types())} (GPT-J-6B needs {WEIGHTS_GIB:.1f} GiB of 16-bit weights "
        f"plus KV cache for {MIN_FULL_SEQUENCES} full {GPTJ_CONTEXT}-token sequences; the serving image's vLLM has "
        f"CUDA kernels for {oldest} and newer only{refused})"
    )


def container_settings(instance_type: str) -> ContainerSettings:
    """Settings for GPT-J-6B on `instance_type`; a type that cannot serve it (no kernels for its GPUs, or too little
    GPU memory) is a setting error, named as such."""
    facts = HOSTING_INSTANCE_TYPES.get(instance_type)
    if facts is None or not serves_gptj(facts):
        raise SettingError("endpoint_instance_type", instance_type, _expected())
    cache = kv_cache_gib(facts)
    return ContainerSettings(
        # Shard over every GPU of the instance: the most KV cache and the lowest per-token latency on one copy.
        tensor_parallel_degree=facts.gpus,
        # As many sequences as fit at full length, so vLLM never has to preempt a running request.
        max_rolling_batch_size=min(MAX_ROLLING_BATCH_SIZE, math.floor(cache / FULL_SEQUENCE_GIB)),
    )
