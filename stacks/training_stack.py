from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from config import Settings
from lambdas.stop_executions.handler import JOB_NAME_PREFIX
from stacks.constructs.dataset_bucket import DatasetBucket, model_key_prefix
from stacks.constructs.notification_topic import NotificationTopic
from stacks.constructs.training_job_role import TrainingJobRole
from stacks.constructs.training_pipeline import TrainingPipeline
from stacks.constructs.training_source import TrainingSource
from stacks.constructs.training_stop_on_delete import StopRunningTrainingOnDelete
from stacks.images import training_image


class TrainingStack(cdk.Stack):
    """Stateless: the training pipeline (a Step Functions state machine around a SageMaker job) and its roles.

    Deploying it starts nothing; `make train` starts an execution (DESIGN.md D2). Deleting it stops running
    executions and their jobs (D3). The data it reads and writes lives in the dataset stack's bucket.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        store: DatasetBucket,
        prep_function: lambda_.IFunction,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        image = training_image(settings.region)
        source = TrainingSource(self, "Source")
        self.job_role = TrainingJobRole(
            self,
            "JobRole",
            store=store,
            source=source,
            image=image,
            volume_key=settings.training_volume_key,
        )
        self.notifications = NotificationTopic(self, "Notifications", email=settings.notification_email)
        self.pipeline = TrainingPipeline(
            self,
            "Pipeline",
            settings=settings,
            store=store,
            prep_function=prep_function,
            job_role=self.job_role.role,
            source=source,
            image=image,
            topic=self.notifications.topic,
        )
        self.stop_on_delete = StopRunningTrainingOnDelete(
            self, "StopOnDelete", state_machine=self.pipeline.state_machine
        )
        cdk.CfnOutput(self, "StateMachineArn", value=self.pipeline.state_machine.state_machine_arn)
        cdk.CfnOutput(
            self,
            "ModelArtifacts",
            value=f"s3://{store.bucket.bucket_name}/{model_key_prefix('<training-job-name>')}",
            description="Where each run's model lands (uncompressed); the execution output names the exact one.",
        )
        cdk.CfnOutput(self, "JobKind", value="tuning" if settings.tuning_enabled else "training")
        cdk.CfnOutput(self, "JobNamePrefix", value=JOB_NAME_PREFIX)
        cdk.CfnOutput(self, "TrainingImage", value=image.uri)
        cdk.CfnOutput(self, "InstanceType", value=settings.training_instance_type)
