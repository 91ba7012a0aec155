"""cdk-nag wiring: the AwsSolutions pack as a CDK validation plugin, and specific acknowledgements.

cdk-nag 3 reports through `Validations`: an unacknowledged finding makes `app.synth()` fail. Each
acknowledgement names one finding (rule id plus, for IAM5, the exact action or resource) and says why.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks
from constructs import Construct, IConstruct


def add_nag_checks(app: cdk.App) -> None:
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True))


def acknowledge(construct: IConstruct, finding: str, reason: str) -> None:
    cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=finding, reason=reason))


def bucket_arn_token(bucket: s3.IBucket) -> str:
    """How cdk-nag spells the bucket's ARN in an IAM5 finding: `<LogicalId.Arn>`."""
    cfn_bucket = bucket.node.default_child
    assert isinstance(cfn_bucket, Construct)
    return f"<{cdk.Stack.of(bucket).get_logical_id(cfn_bucket)}.Arn>"  # type: ignore[arg-type]
