from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.images import ContainerImage
from stacks.nag import acknowledge

# Where SageMaker writes an endpoint's logs (one group per endpoint, named after it) and the per-instance metrics
# (CPU, GPU, memory, disk).
ENDPOINT_LOG_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"
ENDPOINT_METRICS_NAMESPACE = "/aws/sagemaker/Endpoints"


class EndpointRole(Construct):
    """One endpoint's execution role: pull its image, write its own logs and metrics; nothing else.

    Model access (a read-only grant on one model prefix) is added by the caller, and only where the model comes
    from S3. Never AmazonSageMakerFullAccess (DESIGN.md §4).
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, image: ContainerImage, log_group: logs.ILogGroup, description: str
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"), description=description
        )
        # The image's repository only (the deep learning container account holds many).
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], resources=[image.repository_arn]
            )
        )
        # GetAuthorizationToken has no resource-level permissions: IAM only accepts `*` for it.
        self.role.add_to_principal_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
        # Its own log group only, which the stack declares (named after the endpoint) so that it has a retention
        # and goes with the stack; hence no logs:CreateLogGroup.
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        # PutMetricData has no resource-level permissions either; the namespace condition is the scope.
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": ENDPOINT_METRICS_NAMESPACE}},
            )
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "Only ecr:GetAuthorizationToken and cloudwatch:PutMetricData use *: neither supports resource-level "
            "permissions; the metric write is limited to the /aws/sagemaker/Endpoints namespace by a condition.",
        )
