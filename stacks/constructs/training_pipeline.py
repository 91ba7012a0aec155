"""The Step Functions state machine that runs a training (or tuning) job, with its own least-privilege role.

The definition is plain data from training_definition.py; this construct gives it the tokens it needs, a log
group and a role that may do exactly what the definition does: invoke the prep function, create, describe and
stop jobs whose names start with the project prefix, pass the job role to SageMaker and nothing else, manage the
EventBridge rule that `.sync` uses, and publish to the failure topic.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from config import Settings
from lambdas.stop_executions.handler import JOB_NAME_PREFIX
from stacks.constructs.dataset_bucket import DatasetBucket
from stacks.constructs.training_definition import PipelineSpec, definition
from stacks.constructs.training_source import TrainingSource
from stacks.images import ContainerImage
from stacks.log_groups import log_group
from stacks.nag import acknowledge_wildcards

# The EventBridge rules that Step Functions manages for the `.sync` integrations (one per account and region).
SYNC_RULES = {
    "training": "StepFunctionsGetEventsForSageMakerTrainingJobsRule",
    "tuning": "StepFunctionsGetEventsForSageMakerTuningJobsRule",
}


class TrainingPipeline(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        store: DatasetBucket,
        prep_function: lambda_.IFunction,
        job_role: iam.IRole,
        source: TrainingSource,
        image: ContainerImage,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        kind = "tuning" if settings.tuning_enabled else "training"
        # /aws/vendedlogs/ keeps CloudWatch Logs' account-wide resource policy from growing with every group.
        self.log_group = log_group(self, "Logs", name=f"/aws/vendedlogs/states/{stack.stack_name}")
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="Runs the legal GPT-J training pipeline",
        )
        spec = PipelineSpec(
            settings=settings,
            partition=stack.partition,
            bucket_name=store.bucket.bucket_name,
            key_arn=store.key.key_arn,
            job_role_arn=job_role.role_arn,
            prep_function_arn=prep_function.function_arn,
            topic_arn=topic.topic_arn,
            source_s3_uri=source.s3_uri,
            image_uri=image.uri,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_string(stack.to_json_string(definition(spec))),
            role=self.role,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True,
            comment="Legal GPT-J: dataset prep, then a SageMaker training or tuning job",
        )
        self.state_machine.apply_removal_policy(cdk.RemovalPolicy.DESTROY)

        jobs = stack.format_arn(
            service="sagemaker",
            resource="hyper-parameter-tuning-job" if kind == "tuning" else "training-job",
            resource_name=f"{JOB_NAME_PREFIX}*",
        )
        actions = (
            [
                "CreateHyperParameterTuningJob",
                "DescribeHyperParameterTuningJob",
                "StopHyperParameterTuningJob",
                # The `.sync` integration lists the tuning job's training jobs (Step Functions' generated policy).
                "ListTrainingJobsForHyperParameterTuningJob",
            ]
            if kind == "tuning"
            else ["CreateTrainingJob", "DescribeTrainingJob", "StopTrainingJob"]
        )
        # AddTags: the jobs are created with the project tag; ListTags: the `.sync` integration reads them.
        self.role.add_to_policy(
            iam.PolicyStatement(actions=[f"sagemaker:{a}" for a in [*actions, "AddTags", "ListTags"]], resources=[jobs])
        )
        rule = stack.format_arn(service="events", resource="rule", resource_name=SYNC_RULES[kind])
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"], resources=[rule]
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[job_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[prep_function.function_arn])
        )
        self.role.add_to_policy(iam.PolicyStatement(actions=["sns:Publish"], resources=[topic.topic_arn]))
        acknowledge_wildcards(
            self.role,
            [
                (jobs, "The pipeline names each job from its execution at run time, always with the project prefix."),
                (
                    "*",
                    "Added by the state machine construct for log delivery (logs:*LogDelivery, Describe*) and X-Ray "
                    "tracing (xray:Put*, GetSampling*): those APIs accept no resource.",
                ),
            ],
        )
