"""Deleting the training stack stops its running executions and their SageMaker jobs first.

A custom resource whose only work is on Delete (lambdas/stop_executions/handler.py). It takes the state machine's
ARN as a property, so CloudFormation deletes it before the state machine, and the state machine before the job
role: the jobs are stopped, and have finished stopping, while everything they use still exists.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import custom_resources as cr
from constructs import Construct

from lambdas.stop_executions.handler import JOB_NAME_PREFIX
from stacks.log_groups import lambda_role, log_group
from stacks.nag import acknowledge_wildcards

HANDLER_ROOT = Path(__file__).resolve().parents[2] / "lambdas" / "stop_executions"
# Stopping a job takes a few minutes (SIGTERM, two minutes' grace, output upload); the handler waits for it
# within this time and leaves the rest to SageMaker.
TIMEOUT = cdk.Duration.minutes(12)


class StopRunningTrainingOnDelete(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, state_machine: sfn.StateMachine) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        function_logs = log_group(self, "Logs")
        role = lambda_role(self, "Role", function_logs)
        role.add_to_policy(
            iam.PolicyStatement(actions=["states:ListExecutions"], resources=[state_machine.state_machine_arn])
        )
        executions = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{state_machine.state_machine_name}:*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        role.add_to_policy(iam.PolicyStatement(actions=["states:StopExecution"], resources=[executions]))
        training_jobs = stack.format_arn(
            service="sagemaker", resource="training-job", resource_name=f"{JOB_NAME_PREFIX}*"
        )
        tuning_jobs = stack.format_arn(
            service="sagemaker", resource="hyper-parameter-tuning-job", resource_name=f"{JOB_NAME_PREFIX}*"
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:StopTrainingJob", "sagemaker:DescribeTrainingJob"], resources=[training_jobs]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:StopHyperParameterTuningJob", "sagemaker:DescribeHyperParameterTuningJob"],
                resources=[tuning_jobs],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:ListTrainingJobs", "sagemaker:ListHyperParameterTuningJobs"], resources=["*"]
            )
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.ARM_64,
            handler="handler.on_event",
            code=lambda_.Code.from_asset(str(HANDLER_ROOT), exclude=["**/__pycache__", "**/*.pyc", "__init__.py"]),
            role=role,
            log_group=function_logs,
            memory_size=256,
            timeout=TIMEOUT,
            description="On stack deletion: stops running training executions and their SageMaker jobs",
        )
        provider_logs = log_group(self, "ProviderLogs")
        # Our own role for the framework's function: the default one carries the AWSLambdaBasicExecutionRole
        # managed policy (logs:* on every group); this one writes to its own log group only.
        framework_role = lambda_role(self, "ProviderRole", provider_logs)
        provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.function,
            log_group=provider_logs,
            framework_on_event_role=framework_role,
        )
        acknowledge_wildcards(
            framework_role,
            [
                (
                    f"{self.function.function_arn}:*",
                    "The Provider framework may invoke the handler function and its versions, nothing else.",
                )
            ],
        )
        self.resource = cdk.CustomResource(
            self,
            "Resource",
            service_token=provider.service_token,
            resource_type="Custom::StopRunningTraining",
            properties={"StateMachineArn": state_machine.state_machine_arn},
        )
        acknowledge_wildcards(
            role,
            [
                (executions, "Executions are named at start time; this covers only this state machine's executions."),
                (training_jobs, "Job names come from execution names at run time, always with the project prefix."),
                (tuning_jobs, "Job names come from execution names at run time, always with the project prefix."),
                ("*", "sagemaker:ListTrainingJobs and ListHyperParameterTuningJobs accept no resource."),
            ],
        )
