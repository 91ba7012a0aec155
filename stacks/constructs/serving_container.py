"""The LMI (vLLM) container's settings for GPT-J-6B, derived from the instance type's facts. Pure: no constructs.

The memory model (an estimate, checked at synth so that a type that cannot hold the model fails before it bills):
GPT-J-6B has 6,053,381,344 parameters, so its 16-bit weights take 11.3 GiB. vLLM reserves
`gpu_memory_utilization` of each GPU, loses some of it to the CUDA context, activations and CUDA graphs, and
pages the rest out as KV cache: 2 (key, value) x 28 layers x 4096 x 2 bytes = 448 KiB per token, 0.875 GiB per
full 2048-token sequence. An instance type qualifies when that cache holds a few full-length sequences at once.

Attention on Turing (T4, sm_75): GPT-J's heads are 4096 / 16 = 256 wide. FlashInfer's prefill kernel for that head
size needs more than the 64 KiB of shared memory a T4 block can have before FlashInfer 0.6.16 (flashinfer-ai/
flashinfer#3526, as vLLM pull request #55380 states), and vLLM 0.26.0 pins flashinfer-python 0.6.14. vLLM 0.26.0
itself no longer picks FlashInfer below sm_80 (`FlashInferBackend.supports_compute_capability`: "currently broken
on SM75 (Turing) ... raise the floor to SM80 so it is not auto-selected"), FlashAttention needs sm_80, and its
Triton backend, which accepts every compute capability and head sizes from 32, is what remains. The endpoint asks
for it by name on Turing all the same, so that a later image whose vLLM re-enables FlashInfer on sm_75 (the open
pull request #55380) with an older FlashInfer cannot pick a kernel that does not fit. `attention_backend` is an
EngineArgs field in vLLM 0.26.0 (the `VLLM_ATTENTION_BACKEND` environment variable is no longer read there), and
LMI passes every `OPTION_<ARG>` that names an EngineArgs field through to vLLM (its vLLM user guide, "Pass-Through"
configurations; `get_additional_vllm_engine_args` in djl_python/properties_manager/vllm_rb_properties.py).
All of this assumes the image's vLLM has Turing kernels at all, which is not verified: LMI installs its own vLLM
build, lmi27's and lmi29's are compiled for sm_80 and newer only, lmi28's arches are not published
(docs/decisions.md S1 and S10, amended).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from config import SettingError
from config.instance_types import HOSTING_INSTANCE_TYPES, InstanceFacts

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
# vLLM's attention backend where its automatic choice cannot be trusted (see the module docstring).
TURING_ATTENTION_BACKEND = "TRITON_ATTN"

Dtype = Literal["bf16", "fp16"]


@dataclass(frozen=True)
class ContainerSettings:
    """What the LMI container is told (environment variables), and the numbers they come from."""

    tensor_parallel_degree: int
    dtype: Dtype
    max_rolling_batch_size: int
    max_model_len: int = GPTJ_CONTEXT
    gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION
    attention_backend: str | None = None  # None: vLLM's own choice for the GPU
    model_loading_seconds: int = MODEL_LOADING_SECONDS

    def environment(self) -> dict[str, str]:
        """LMI settings common to both endpoints (the model source adds HF_MODEL_ID and friends).

        Names from the LMI vLLM user guide: async mode (the default and recommended handler since LMI v17) talks
        to vLLM's engine through its OpenAI modules and still accepts the LMI `{"inputs", "parameters"}` schema.
        They are set explicitly so that a container default changing under the same tag cannot change the model.
        """
        environment = {
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
        if self.attention_backend is not None:
            environment["OPTION_ATTENTION_BACKEND"] = self.attention_backend
        return environment


def kv_cache_gib(facts: InstanceFacts) -> float:
    """GiB left for the KV cache on one instance once the weights (sharded over all GPUs) are loaded."""
    usable = facts.gpus * (facts.gpu_memory_gib * GPU_MEMORY_UTILIZATION - RUNTIME_OVERHEAD_GIB_PER_GPU)
    return usable - WEIGHTS_GIB


def holds_gptj(facts: InstanceFacts) -> bool:
    return (
        facts.gpus > 0
        and GPTJ_HEADS % facts.gpus == 0
        and kv_cache_gib(facts) >= MIN_FULL_SEQUENCES * FULL_SEQUENCE_GIB
    )


def suitable_instance_types() -> list[str]:
    return sorted(name for name, facts in HOSTING_INSTANCE_TYPES.items() if holds_gptj(facts))


def container_settings(instance_type: str) -> ContainerSettings:
    """Settings for GPT-J-6B on `instance_type`; a type that cannot hold it is a setting error, named as such."""
    facts = HOSTING_INSTANCE_TYPES.get(instance_type)
    if facts is None or not holds_gptj(facts):
        allowed = (
            f"one of {', '.join(suitable_instance_types())} (GPT-J-6B needs {WEIGHTS_GIB:.1f} GiB of 16-bit weights "
            f"plus KV cache for {MIN_FULL_SEQUENCES} full {GPTJ_CONTEXT}-token sequences)"
        )
        raise SettingError("endpoint_instance_type", instance_type, allowed)
    cache = kv_cache_gib(facts)
    return ContainerSettings(
        # Shard over every GPU of the instance: the most KV cache and the lowest per-token latency on one copy.
        tensor_parallel_degree=facts.gpus,
        # Turing (T4) and Volta have no bf16; fp16 holds GPT-J's activations (it was released with fp16 weights).
        dtype="bf16" if facts.supports_bf16 else "fp16",
        # As many sequences as fit at full length, so vLLM never has to preempt a running request.
        max_rolling_batch_size=min(MAX_ROLLING_BATCH_SIZE, math.floor(cache / FULL_SEQUENCE_GIB)),
        attention_backend=TURING_ATTENTION_BACKEND if facts.gpu_arch == "turing" else None,
    )
