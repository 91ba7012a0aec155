from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.nag import acknowledge, acknowledge_scanner

ACCESS_LOG_DAYS = 90
NONCURRENT_VERSION_DAYS = 30
CHECKPOINT_DAYS = 14
INCOMPLETE_UPLOAD_DAYS = 1
CHECKPOINT_PREFIX = "checkpoints/"
# Training jobs write uncompressed models under models/<job-name>/output/model/ (CompressionType NONE).
MODELS_PREFIX = "models/"


# What SageMaker appends after the job name under a job's S3OutputPath (the models/ prefix).
MODEL_KEY_SUFFIX = "/output/model/"


def model_key_prefix(training_job: str) -> str:
    """Where a training job's model lies in the bucket."""
    return f"{MODELS_PREFIX}{training_job}{MODEL_KEY_SUFFIX}"


class DatasetBucket(Construct):
    """The bucket for datasets, checkpoints and model artifacts, with its key and its access-log bucket.

    By default `cdk destroy` empties and deletes both buckets and schedules the key's deletion; with
    `retain=True` all three stay (the key too: without it the data could not be read).
    """

    def __init__(self, scope: Construct, construct_id: str, *, retain: bool) -> None:
        super().__init__(scope, construct_id)
        removal = cdk.RemovalPolicy.RETAIN if retain else cdk.RemovalPolicy.DESTROY
        self.key = kms.Key(
            self,
            "Key",
            description="Encrypts the legal GPT-J datasets, checkpoints and models at rest",
            enable_key_rotation=True,
            pending_window=cdk.Duration.days(7),
            removal_policy=removal,
        )
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,  # log delivery cannot write to SSE-KMS buckets
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=cdk.Duration.days(ACCESS_LOG_DAYS),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(INCOMPLETE_UPLOAD_DAYS),
                )
            ],
            removal_policy=removal,
            auto_delete_objects=not retain,
        )
        acknowledge(
            self.access_logs,
            "AwsSolutions-S1",
            "This is the server access log bucket; logging it into itself would loop.",
        )
        access_logs_bucket = self.access_logs.node.default_child
        assert isinstance(access_logs_bucket, cdk.CfnResource)
        acknowledge_scanner(
            access_logs_bucket,
            "CKV_AWS_18",
            "This is the server access log bucket: logging it into itself would log every delivery of its own logs, "
            "and a second log bucket would only move the same finding there. Access to it is limited to the S3 "
            "logging service and the account (bucket policy), and CloudTrail records its management events.",
        )
        acknowledge_scanner(
            access_logs_bucket,
            "CKV_AWS_21",
            "Server access log objects are written once by the S3 logging service and never overwritten, and expire "
            f"after {ACCESS_LOG_DAYS} days: versioning would only keep noncurrent copies of expired logs, and make "
            "emptying the bucket on destroy slower.",
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="dataset-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="AbortIncompleteUploads",
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(INCOMPLETE_UPLOAD_DAYS),
                ),
                s3.LifecycleRule(
                    id="ExpireNoncurrentVersions",
                    noncurrent_version_expiration=cdk.Duration.days(NONCURRENT_VERSION_DAYS),
                    expired_object_delete_marker=True,
                ),
                s3.LifecycleRule(
                    id="ExpireCheckpoints",
                    prefix=CHECKPOINT_PREFIX,
                    expiration=cdk.Duration.days(CHECKPOINT_DAYS),
                ),
            ],
            removal_policy=removal,
            auto_delete_objects=not retain,
        )
