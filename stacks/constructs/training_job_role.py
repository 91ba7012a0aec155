"""The SageMaker execution role of the training jobs: least privilege, never AmazonSageMakerFullAccess.

It reads the datasets, writes models and checkpoints (and nothing else of the bucket), reads the one source
archive, pulls the one training image repository, and writes the jobs' logs and metrics.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from lambdas.stop_executions.handler import JOB_NAME_PREFIX
from stacks.constructs.bucket_access import grant_prefix
from stacks.constructs.dataset_bucket import CHECKPOINT_PREFIX, MODELS_PREFIX, DatasetBucket
from stacks.constructs.dataset_prep import DATASET_PREFIX
from stacks.constructs.training_source import TrainingSource
from stacks.images import ContainerImage
from stacks.nag import acknowledge_wildcards

# SageMaker writes every training job's logs into this group, one stream per job and host.
TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
METRICS_NAMESPACE = "/aws/sagemaker/TrainingJobs"


class TrainingJobRole(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        store: DatasetBucket,
        source: TrainingSource,
        image: ContainerImage,
        volume_key: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Runs the legal GPT-J training jobs: datasets in, models and checkpoints out",
        )
        grant_prefix(self.role, store, DATASET_PREFIX)
        grant_prefix(self.role, store, MODELS_PREFIX, write=True)
        # Delete too: checkpoint sync mirrors the local folder, where train.py keeps only the newest checkpoints.
        grant_prefix(self.role, store, CHECKPOINT_PREFIX, write=True, delete=True)
        # Output encryption with the bucket's key needs kms:Encrypt besides the data key grant_prefix gives.
        self.role.add_to_policy(iam.PolicyStatement(actions=["kms:Encrypt"], resources=[store.key.key_arn]))
        if volume_key:
            # EBS-only instance types: SageMaker encrypts the training volume with the key through a grant.
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["kms:CreateGrant"],
                    resources=[store.key.key_arn],
                    conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
                )
            )
        source.grant_read(self.role)
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                resources=[image.repository_arn],
            )
        )
        # These three APIs take no resource (IAM's service authorization reference lists none for them).
        unscoped = iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"])
        metrics = iam.PolicyStatement(
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
        )
        self.role.add_to_policy(unscoped)
        self.role.add_to_policy(metrics)
        log_group_arn = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=TRAINING_LOG_GROUP,
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        # No logs:CreateLogGroup: the group is SageMaker's, shared by every training job of the account, so neither
        # the stack nor its roles may create it (it would outlive `cdk destroy`); `make train` checks that it exists.
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["logs:DescribeLogStreams"], resources=[f"{log_group_arn}:*"])
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[f"{log_group_arn}:log-stream:{JOB_NAME_PREFIX}*"],
            )
        )
        # SageMaker's time-series metrics for the job (EnableSageMakerMetricsTimeSeries) go to its trial component.
        trial_components = stack.format_arn(
            service="sagemaker", resource="experiment-trial-component", resource_name=f"{JOB_NAME_PREFIX}*"
        )
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["sagemaker:BatchPutMetrics"], resources=[trial_components])
        )
        acknowledge_wildcards(
            self.role,
            [  # the bucket prefixes are acknowledged by grant_prefix
                (
                    "*",
                    "ecr:GetAuthorizationToken and cloudwatch:PutMetricData accept no resource; the metrics are "
                    "limited to SageMaker's training namespace by condition.",
                ),
                (
                    f"{log_group_arn}:*",
                    "SageMaker's fixed log group for training jobs; its streams are created per job and host.",
                ),
                (
                    f"{log_group_arn}:log-stream:{JOB_NAME_PREFIX}*",
                    "Log streams are named after the job, which the pipeline names at run time with this prefix.",
                ),
                (trial_components, "SageMaker names each job's trial component after the job, known at run time."),
            ],
        )
