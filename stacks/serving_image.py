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

from dataclasses import dataclass

from aws_cdk.region_info import RegionInfo

LMI_REPOSITORY = "djl-inference"
LMI_TAG = "0.36.0-lmi18.0.0-cu128"
# What the tag ships, for the docs and the decision log (release notes of LMI v18).
LMI_VLLM_VERSION = "0.12.0"


@dataclass(frozen=True)
class ServingImage:
    """A container image in the deep learning container registry of one region."""

    account: str
    region: str
    partition: str
    domain_suffix: str
    repository: str
    tag: str

    @property
    def uri(self) -> str:
        return f"{self.account}.dkr.ecr.{self.region}.{self.domain_suffix}/{self.repository}:{self.tag}"

    @property
    def repository_arn(self) -> str:
        """What the endpoint role may pull from: this one repository, not every repository of the account."""
        return f"arn:{self.partition}:ecr:{self.region}:{self.account}:repository/{self.repository}"


def lmi_image(region: str) -> ServingImage:
    """The pinned LMI image for `region`, from the CDK's region facts (no lookup, no network)."""
    facts = RegionInfo.get(region)
    account = facts.dlc_repository_account
    if account is None:
        raise ValueError(f"no deep learning container account is known for region {region!r}")
    return ServingImage(
        account=account,
        region=region,
        partition=facts.partition or "aws",
        domain_suffix=facts.domain_suffix or "amazonaws.com",
        repository=LMI_REPOSITORY,
        tag=LMI_TAG,
    )
