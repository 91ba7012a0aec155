"""The serving container and the host image it needs, pinned and resolved offline for a region (DESIGN.md D4, D6).

Choice: the AWS Large Model Inference (LMI) container LMI v28, DJL Serving 0.36.0 with vLLM 0.26.0,
`djl-inference:0.36.0-lmi28.0.0-cu130`, on SageMaker's `al2023-ami-sagemaker-inference-gpu-4-1` hosts (NVIDIA
driver 580, CUDA 13.0). Why (docs/decisions.md S1 and S9 have the sources):

* It is in AWS's list of images: aws/deep-learning-containers
  `docs/src/data/djl-inference/0.36-lmi28.0.0-gpu.yml` ("cuda: cu130", "engine: LMI 28.0.0, vLLM 0.26.0",
  tag "0.36.0-lmi28.0.0-cu130"; available_images.md is generated from these files). The list now has LMI v29
  (`0.38.0-lmi29.0.0-cu130`, vLLM 0.28.0), not taken: its vLLM wheel is built for sm_80 and newer only, and nothing
  of it (Dockerfile, requirements, handler) is published where it can be read (S1's amendment).
* CUDA 13.0 needs a newer driver than g5 hosts get by default (470, CUDA 11.4, in SageMaker's "GPU driver
  upgrades" table). The AMI version above brings driver 580 with CUDA 13.0 (botocore's SageMaker model, the
  `InferenceAmiVersion` documentation), so the image runs without CUDA forward compatibility; AutoGluon-Cloud picks
  the same AMI for cu13 images on ml.g4dn, ml.g5, ml.g6, ml.g6e, ml.p4d and ml.p5.
* vLLM 0.26.0 implements `GPTJForCausalLM` (its wheel's model registry maps it to `gpt_j.py`), so both the hub model
  and our safetensors checkpoint load without custom code.
* Its vLLM has CUDA kernels for sm_80 and newer only, so Turing hosts (the T4s of ml.g4dn) are refused at synth
  (`VLLM_GPU_ARCHITECTURES` below; docs/decisions.md S10). CUDA 13 itself still builds for Turing; LMI's own vLLM
  build does not. The way back, not taken: an LMI release whose vLLM wheel has sm_75 kernels; lmi25 installs PyPI's
  vLLM 0.20.1, whose wheel has them, and S10 lists what serving a T4 from it would still need.

Only the account comes from a table, the CDK's offline region facts; never a network call at synth time.
"""

from __future__ import annotations

from stacks.images import ContainerImage, dlc_image

LMI_REPOSITORY = "djl-inference"
LMI_TAG = "0.36.0-lmi28.0.0-cu130"
# The host image whose driver runs the tag's CUDA (its `-cuNNN` suffix) natively, without forward compatibility:
# tests/test_serving_stack.py compares the two, the AMI's CUDA read from botocore's InferenceAmiVersion documentation.
INFERENCE_AMI_VERSION = "al2023-ami-sagemaker-inference-gpu-4-1"
# The GPU architectures (config/instance_types.py `gpu_arch`) the image's vLLM has CUDA kernels for, with the compute
# capabilities its wheel is built for. vLLM's own CUDA ops (`_C`, e.g. GPT-J's rotary embedding and GELU, the write
# into the paged KV cache) are compiled per architecture, whatever the attention backend, and cubins or PTX built
# for sm_80 do not load on an older GPU: a type whose architecture is not here cannot serve at all
# (serving_container.py refuses it).
# LMI installs a vLLM wheel of its own, not PyPI's (`lmi-container-requirements.txt` since lmi26); its build lists,
# from deepjavalibrary/djl-serving's pull requests:
# - lmi27, #3054 (2026-06-23, merged): "Wheel arches: sm_80/86/89/90/100/120";
# - lmi28 (this tag), #3065 (2026-07-31, merged): "the patched vLLM v0.26.0 wheel ... Built torch 2.11.0+cu130 /
#   CUDA 13.0 / py3.12 (matches lmi container ABI)", no list stated;
# - lmi29, #3075 (2026-09-09, merged): "built py3.12 / CUDA 13.0 (`cu130`),
#   `TORCH_CUDA_ARCH_LIST=8.0;8.6;8.9;9.0;10.0;12.0`".
# No 7.5 (Turing, T4) in the releases either side of this one and none shown for it, so Turing is refused rather
# than deployed on a hope. Ampere is A100 (sm_80) and A10G (sm_86), Ada L4 and L40S (sm_89), Hopper H100 (sm_90);
# Blackwell has no hosting type yet. Change this with the tag, from the new wheel's build list (docs/decisions.md
# S10 says what a T4 would need).
VLLM_GPU_ARCHITECTURES: dict[str, tuple[str, ...]] = {
    "ampere": ("sm_80", "sm_86"),
    "ada": ("sm_89",),
    "hopper": ("sm_90",),
    "blackwell": ("sm_100", "sm_120"),
}


def lmi_image(region: str) -> ContainerImage:
    """The pinned LMI image for `region`, from the CDK's region facts (no lookup, no network)."""
    return dlc_image(region, LMI_REPOSITORY, LMI_TAG)
