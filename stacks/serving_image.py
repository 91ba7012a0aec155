"""The serving container, pinned and resolved offline for a region (DESIGN.md D4, D6).

Choice: the AWS Large Model Inference (LMI) container, DJL Serving 0.36.0 with vLLM 0.12.0 (LMI v18),
`djl-inference:0.36.0-lmi18.0.0-cu128`. Why (docs/decisions.md has the sources):

* It is the newest LMI GPU image listed in both official lists read for this choice:
  aws/deep-learning-containers `available_images.md` ("DJLServing 0.36.0 + vLLM 0.12.0 | GPU | py312") and
  deepjavalibrary/djl-serving `serving/docs/lmi/release_notes.md` ("LMI V18 ... vLLM has been upgraded to 0.12.0").
  Later tags (lmi19/lmi20 `-cu128`, lmi21+ `-cu129`) appear only in third-party code; the cu129 ones are reported
  to need a newer driver than g5 hosts have. Move the pin only to a tag one of the official lists shows.
* vLLM lists `GPTJForCausalLM` (GPT-J) among its natively implemented architectures in every release read,
  the current documentation included, so both the hub model and our safetensors checkpoint load without custom code.
* The Hugging Face TGI container, the other maintained-looking candidate, is not: TGI went into maintenance mode
  on 2025-12-11 and its repository was archived read-only on 2026-03-21.
* The SageMaker Python SDK's `image_uri_config/djl-lmi.json` stops at 0.30.0 (`-lmi12.0.0-cu124`, LMI-Dist,
  before the vLLM async handler), so it is not used as the source of the tag; only the account comes from the
  CDK's offline region facts, never from a network call at synth time.
"""

from __future__ import annotations

from stacks.images import ContainerImage, dlc_image

LMI_REPOSITORY = "djl-inference"
LMI_TAG = "0.36.0-lmi18.0.0-cu128"


def lmi_image(region: str) -> ContainerImage:
    """The pinned LMI image for `region`, from the CDK's region facts (no lookup, no network)."""
    return dlc_image(region, LMI_REPOSITORY, LMI_TAG)
