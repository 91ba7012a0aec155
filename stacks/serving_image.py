"""The serving container and the host image it needs, pinned and resolved offline for a region (DESIGN.md D4, D6).

Choice: the AWS Large Model Inference (LMI) container LMI v28, DJL Serving 0.36.0 with vLLM 0.26.0,
`djl-inference:0.36.0-lmi28.0.0-cu130`, on SageMaker's `al2023-ami-sagemaker-inference-gpu-4-1` hosts (NVIDIA
driver 580, CUDA 13.0). Why (docs/decisions.md S1 and S9 have the sources):

* It is in AWS's list of images: aws/deep-learning-containers
  `docs/src/data/djl-inference/0.36-lmi28.0.0-gpu.yml` ("cuda: cu130", "engine: LMI 28.0.0, vLLM 0.26.0",
  tag "0.36.0-lmi28.0.0-cu130"; available_images.md is generated from these files). The list now has LMI v29
  (`0.38.0-lmi29.0.0-cu130`, vLLM 0.28.0), not taken: its vLLM wheel is built for sm_80 and newer only, and nothing
  of it (Dockerfile, requirements, handler) is published where it can be read (S1's amendment).
* CUDA 13.0 needs a newer driver than g4dn and g5 hosts get by default (470, CUDA 11.4, in SageMaker's "GPU driver
  upgrades" table). The AMI version above brings driver 580 with CUDA 13.0 (botocore's SageMaker model, the
  `InferenceAmiVersion` documentation), so the image runs without CUDA forward compatibility; AutoGluon-Cloud picks
  the same AMI for cu13 images on ml.g4dn, ml.g5, ml.g6, ml.g6e, ml.p4d and ml.p5. CUDA 13 still builds for
  Turing (sm_75): it dropped Maxwell, Pascal and Volta only; but LMI builds its own vLLM wheel, and whether lmi28's
  has sm_75 kernels is not published (lmi27's and lmi29's have none): g4dn is at risk (S1, S10).
* vLLM 0.26.0 implements `GPTJForCausalLM` (its wheel's model registry maps it to `gpt_j.py`), so both the hub model
  and our safetensors checkpoint load without custom code.
* On Turing it no longer picks FlashInfer (see `attention_backend` in serving_container.py).

Only the account comes from a table, the CDK's offline region facts; never a network call at synth time.
"""

from __future__ import annotations

from config.instance_types import InstanceFacts
from stacks.images import ContainerImage, dlc_image

LMI_REPOSITORY = "djl-inference"
LMI_TAG = "0.36.0-lmi28.0.0-cu130"
# The host image whose driver runs the tag's CUDA (its `-cuNNN` suffix) natively, without forward compatibility:
# tests/test_serving_stack.py compares the two, the AMI's CUDA read from botocore's InferenceAmiVersion documentation.
INFERENCE_AMI_VERSION = "al2023-ami-sagemaker-inference-gpu-4-1"


def lmi_image(region: str) -> ContainerImage:
    """The pinned LMI image for `region`, from the CDK's region facts (no lookup, no network)."""
    return dlc_image(region, LMI_REPOSITORY, LMI_TAG)


def inference_ami_version(instance: InstanceFacts) -> str | None:
    """The host image for the endpoint's instances: the one whose driver runs the LMI image's CUDA, on GPU types."""
    return INFERENCE_AMI_VERSION if instance.gpus > 0 else None
