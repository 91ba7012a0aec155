"""Container images, pinned and resolved offline for a region (DESIGN.md D4, D5): never a network call at synth.

Only the registry account comes from a lookup table, the CDK's offline region facts
(`RegionInfo.dlc_repository_account`); the repository and tag are pinned here, and the domain suffix and
partition follow the region (`amazonaws.com.cn` and `aws-cn` in China).

Training image: the AWS PyTorch training Deep Learning Container for SageMaker,
`pytorch-training:2.8.0-gpu-py312-cu129-ubuntu22.04-sagemaker`: the newest one whose torch has V100 (sm_70) kernels.
Why (docs/decisions.md T1 has the sources):

* The default instance is ml.p3dn.24xlarge, 8x V100 (sm_70), and transformers 5.x needs torch >= 2.6 (D5).
* The 2.7 and 2.8 training DLCs install PyTorch's public wheels (2.7.1 from its cu128 index, 2.8.0 from cu129);
  PyTorch's 2.8 build script builds its CUDA 12.8 and 12.9 wheels for 7.0 (Volta) and up, the 2.7 cu128 wheels
  start at 7.5, and the CUDA 13 (cu130) wheels of the 2.9 and newer DLCs start at 7.5. PyPI's torch 2.8.0 (the
  cu128 build of the same release) reports `sm_70 sm_75 sm_80 sm_86 sm_90 sm_100 sm_120` (read here).
* The DLC release notes for "PyTorch Training 2.8 on SageMaker" list this exact tag with PyTorch 2.8.0, CUDA 12.9.1,
  cuDNN 9.10.2.21, NCCL 2.27.3, Python 3.12.10; the image installs the SageMaker training toolkit
  (`sagemaker-pytorch-training`), which downloads `sagemaker_submit_directory`, installs its requirements.txt and
  runs `sagemaker_program`.
* Its end of patch was 2026-08-06; 2.6's (the previous choice) 2026-01-29. No training DLC in patch support has
  Volta kernels (2.10 and newer are CUDA 13 builds).
* Not verified here: the image's own `torch.cuda.get_arch_list()` (no image pulls; the cu129 wheel cannot be
  downloaded from here). train.py logs it at start and stops on a GPU it has no kernels for.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk.region_info import RegionInfo

TRAINING_REPOSITORY = "pytorch-training"
TRAINING_TAG = "2.8.0-gpu-py312-cu129-ubuntu22.04-sagemaker"


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
