"""Container images, pinned and resolved offline for a region (DESIGN.md D4, D5): never a network call at synth.

Only the registry account comes from a lookup table, the CDK's offline region facts
(`RegionInfo.dlc_repository_account`); the repository and tag are pinned here, and the domain suffix and
partition follow the region (`amazonaws.com.cn` and `aws-cn` in China).

Training image: the AWS PyTorch training Deep Learning Container for SageMaker,
`pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-sagemaker`. Why (docs/decisions.md has the sources):

* The default instance is ml.p3dn.24xlarge, 8x V100 (sm_70), and transformers 5.x needs torch >= 2.6 (D5).
  PyTorch keeps Volta in its CUDA 12.6 builds on every release (the 12.6 arch list is 5.0 to 9.0), whereas the
  CUDA 12.8 builds of 2.7 left it out (re-added in 2.8, dropped again for 2.11) and CUDA 13 has none. The 2.7
  training DLC is `cu128`, the 2.8 and 2.9 ones `cu129`, built by AWS with an arch list we could not read; 2.6 with
  `cu126` is the one whose CUDA line is known to keep sm_70, and nothing newer is needed.
* The DLC release notes for "PyTorch Training 2.6 on SageMaker" list this exact tag with PyTorch 2.6.0, CUDA 12.6.3,
  NCCL 2.23.4, Python 3.12.8; the image installs the SageMaker training toolkit (`sagemaker-pytorch-training`),
  which downloads `sagemaker_submit_directory`, installs its requirements.txt and runs `sagemaker_program`.
* The Hugging Face PyTorch training DLC is not used: it adds transformers 4.x, which requirements.txt replaces
  with 5.24 anyway, to a torch that is either too old (2.5.x) or built for CUDA 12.8 (2.7.1, in an SDK pull
  request for transformers 4.55).
* Not verified here: the image's own torch build's `torch.cuda.get_arch_list()` (its Dockerfile installs an AWS-built
  `torch-2.6.0+cu126` wheel; its arch-list comment names 7.0 for p3). train.py should log the arch list at start.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk.region_info import RegionInfo

TRAINING_REPOSITORY = "pytorch-training"
TRAINING_TAG = "2.6.0-gpu-py312-cu126-ubuntu22.04-sagemaker"


class UnknownRegionError(ValueError):
    """The CDK's region facts have no deep learning container account for this region."""


@dataclass(frozen=True)
class ContainerImage:
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
        """What a role may pull from: this one repository, not every repository of the registry account."""
        return f"arn:{self.partition}:ecr:{self.region}:{self.account}:repository/{self.repository}"


def dlc_image(region: str, repository: str, tag: str) -> ContainerImage:
    info = RegionInfo.get(region)
    account = info.dlc_repository_account
    if not account:
        raise UnknownRegionError(f"no deep learning container account is known for region {region!r}")
    return ContainerImage(
        account=account,
        region=region,
        partition=info.partition or "aws",
        domain_suffix=info.domain_suffix or "amazonaws.com",
        repository=repository,
        tag=tag,
    )


def training_image(region: str) -> ContainerImage:
    """The pinned PyTorch training image for `region` (see the module docstring for the choice)."""
    return dlc_image(region, TRAINING_REPOSITORY, TRAINING_TAG)
