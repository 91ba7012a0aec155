from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import triggers
from constructs import Construct

from config import Settings
from stacks.constructs.bucket_access import grant_prefix
from stacks.constructs.dataset_bucket import DatasetBucket
from stacks.log_groups import lambda_role, log_group

LAMBDAS_ROOT = Path(__file__).resolve().parents[2] / "lambdas"
DATASET_PREFIX = "datasets/"
# Sized from bench/bench_prep.py (docs/dataset-prep.md): peak RSS is ~81 MB whatever the archive size, but Lambda
# gives CPU in proportion to memory and the prep is CPU-bound once downloaded. Only the archive (~93 MB) sits in
# /tmp: the outputs stream to S3.
MEMORY_MB = 1024
EPHEMERAL_STORAGE_MB = 512
TIMEOUT = cdk.Duration.minutes(15)


class DatasetPrep(Construct):
    """The Lambda that turns the Zenodo archive into a versioned training set, run once per configuration at
    deploy time (a CDK Trigger) and again as the first step of every training run (it is idempotent)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        store: DatasetBucket,
        settings: Settings,
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        function_logs = log_group(self, "Logs")
        role = lambda_role(self, "Role", function_logs)
        grant_prefix(role, store, DATASET_PREFIX, write=True, delete=True)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.ARM_64,
            handler="dataset_prep.handler.handler",
            # The code root is lambdas/ (the package imports relatively), but only dataset_prep/ ships: another
            # function's change must not change this asset and so re-run the deploy-time trigger.
            code=lambda_.Code.from_asset(
                str(LAMBDAS_ROOT), exclude=["*", "!dataset_prep", "!dataset_prep/**", "**/__pycache__", "**/*.pyc"]
            ),
            role=role,
            log_group=function_logs,
            memory_size=MEMORY_MB,
            ephemeral_storage_size=cdk.Size.mebibytes(EPHEMERAL_STORAGE_MB),
            timeout=TIMEOUT,
            # None unless asked for: a reservation fails the deploy in accounts with little concurrency (a new
            # account's 10), and the prep's lock object already keeps two runs of a dataset from writing at once.
            reserved_concurrent_executions=settings.prep_reserved_concurrency or None,
            environment={
                "DATASET_BUCKET": store.bucket.bucket_name,
                "DOC_COUNT": str(settings.doc_count),
                "VALIDATION": settings.validation,
                "SOURCE_URL": settings.dataset_url,
                "EXPECTED_MD5": settings.dataset_md5,
            },
            description="Downloads the UK-Abs judgments and publishes a verified training set with its manifest",
        )
        errors = self.function.metric_errors(period=cdk.Duration.minutes(5), statistic="Sum")
        self.error_alarm = cloudwatch.Alarm(
            self,
            "ErrorAlarm",
            metric=errors,
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="The dataset prep Lambda failed: its log group says why.",
        )
        self.error_alarm.add_alarm_action(cloudwatch_actions.SnsAction(alarm_topic))
        # Re-runs whenever the code or its configuration (the environment above) changes.
        self.trigger = triggers.Trigger(
            self,
            "RunOnDeploy",
            handler=self.function,
            execute_on_handler_change=True,
            timeout=TIMEOUT,
            execute_after=[store],
        )
