"""Fine-grained assertions on the dataset stack: security and clean-up properties of the bucket, the prep."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match

from tests.synth import Assembly, synth

STACK = "LegalGptjDataset"
# Changing a stateful resource's logical ID replaces it (and its data): these must never move by accident.
BUCKET_ID = "StoreBucket4FBDE984"
KEY_ID = "StoreKey7A3C02BD"
ACCESS_LOGS_ID = "StoreAccessLogs087BBF22"
# Not stateful (logs and notices only, deleted with the stack), but named here so that a third key is noticed.
TELEMETRY_KEY_ID = "TelemetryKey5C3BC4DC"


def resources(app: Assembly, resource_type: str) -> dict[str, dict[str, Any]]:
    return app.resources(STACK, resource_type)


def test_stateful_logical_ids_are_stable(default_app: Assembly) -> None:
    assert set(resources(default_app, "AWS::S3::Bucket")) == {BUCKET_ID, ACCESS_LOGS_ID}
    assert set(resources(default_app, "AWS::KMS::Key")) == {KEY_ID, TELEMETRY_KEY_ID}


@pytest.mark.parametrize("bucket_id", [BUCKET_ID, ACCESS_LOGS_ID])
def test_buckets_block_public_access_and_enforce_tls(default_app: Assembly, bucket_id: str) -> None:
    bucket = resources(default_app, "AWS::S3::Bucket")[bucket_id]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    policies = [
        p["Properties"]
        for p in resources(default_app, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    assert len(policies) == 1
    tls_denials = [
        s
        for s in policies[0]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert tls_denials and tls_denials[0]["Action"] == "s3:*"


def test_dataset_bucket_is_encrypted_with_its_rotating_key(default_app: Assembly) -> None:
    bucket = resources(default_app, "AWS::S3::Bucket")[BUCKET_ID]["Properties"]
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": [KEY_ID, "Arn"]},
    }
    assert rule["BucketKeyEnabled"] is True
    assert resources(default_app, "AWS::KMS::Key")[KEY_ID]["Properties"]["EnableKeyRotation"] is True
    logs = resources(default_app, "AWS::S3::Bucket")[ACCESS_LOGS_ID]["Properties"]
    sse = logs["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert sse == {"SSEAlgorithm": "AES256"}


def test_dataset_bucket_versioning_access_logs_and_lifecycle(default_app: Assembly) -> None:
    bucket = resources(default_app, "AWS::S3::Bucket")[BUCKET_ID]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": ACCESS_LOGS_ID}
    rules = {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["AbortIncompleteUploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert rules["ExpireNoncurrentVersions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert rules["ExpireCheckpoints"]["Prefix"] == "checkpoints/"
    assert all(rule["Status"] == "Enabled" for rule in rules.values())


def test_destroy_deletes_and_empties_by_default(default_app: Assembly) -> None:
    stateful = {
        **resources(default_app, "AWS::S3::Bucket"),
        **resources(default_app, "AWS::KMS::Key"),
    }
    assert {r["DeletionPolicy"] for r in stateful.values()} == {"Delete"}
    auto_delete = resources(default_app, "Custom::S3AutoDeleteObjects")
    assert {r["Properties"]["BucketName"]["Ref"] for r in auto_delete.values()} == {BUCKET_ID, ACCESS_LOGS_ID}
    key = resources(default_app, "AWS::KMS::Key")[KEY_ID]
    assert key["Properties"]["PendingWindowInDays"] == 7


def test_retain_data_keeps_buckets_and_key() -> None:
    app = synth(retain_data=True)
    keys = resources(app, "AWS::KMS::Key")
    stateful = {**resources(app, "AWS::S3::Bucket"), KEY_ID: keys[KEY_ID]}
    assert {r["DeletionPolicy"] for r in stateful.values()} == {"Retain"}
    assert {r["UpdateReplacePolicy"] for r in stateful.values()} == {"Retain"}
    # The logs-and-topic key encrypts nothing that is kept: it goes with the stack, its log groups and topic.
    assert keys[TELEMETRY_KEY_ID]["DeletionPolicy"] == "Delete"
    assert resources(app, "Custom::S3AutoDeleteObjects") == {}


def test_prep_function_runtime_and_limits(default_app: Assembly) -> None:
    template = default_app.template(STACK)
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "dataset_prep.handler.handler",
            "Runtime": "python3.14",
            "Architectures": ["arm64"],
            "ReservedConcurrentExecutions": Match.absent(),
            "MemorySize": 1024,
            "EphemeralStorage": {"Size": 512},
            "Timeout": 900,
            "LoggingConfig": {"LogGroup": Match.any_value()},
            "Environment": {
                "Variables": {
                    "DATASET_BUCKET": {"Ref": BUCKET_ID},
                    "DOC_COUNT": "693",
                    "VALIDATION": "held_out",
                    "SOURCE_URL": "https://zenodo.org/records/7152317/files/dataset.zip?download=1",
                    "EXPECTED_MD5": "c77948fe580d26200f5c9fe53b81485d",
                }
            },
        },
    )
    prep = next(
        f
        for f in resources(default_app, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "dataset_prep.handler.handler"
    )
    log_group = resources(default_app, "AWS::Logs::LogGroup")[prep["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]]
    assert (log_group["Properties"]["RetentionInDays"], log_group["DeletionPolicy"]) == (30, "Delete")


def test_prep_code_asset_holds_only_its_own_package(default_app: Assembly) -> None:
    """Another function's change (lambdas/stop_executions/) must not redeploy the prep and re-run its trigger."""
    functions = resources(default_app, "AWS::Lambda::Function").values()
    prep = next(f for f in functions if f["Properties"].get("Handler") == "dataset_prep.handler.handler")
    asset_hash = prep["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    staged = default_app.outdir / f"asset.{asset_hash}"
    assert [path.name for path in staged.iterdir()] == ["dataset_prep"]
    assert (staged / "dataset_prep" / "handler.py").is_file()
    assert not list(staged.rglob("__pycache__"))


def test_prep_configuration_follows_settings() -> None:
    app = synth(doc_count=250, validation="summaries")
    functions = resources(app, "AWS::Lambda::Function")
    variables = [f["Properties"].get("Environment", {}).get("Variables", {}) for f in functions.values()]
    prep = next(v for v in variables if "DOC_COUNT" in v)
    assert (prep["DOC_COUNT"], prep["VALIDATION"]) == ("250", "summaries")


def test_prep_runs_on_deploy_and_alarms_on_errors(default_app: Assembly) -> None:
    template = default_app.template(STACK)
    template.resource_count_is("Custom::Trigger", 1)
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "Errors",
            "Namespace": "AWS/Lambda",
            "Threshold": 1,
            "AlarmActions": [{"Ref": Match.string_like_regexp("NotificationsTopic")}],
        },
    )


def test_prep_role_is_scoped_to_the_dataset_prefix(default_app: Assembly) -> None:
    policy = next(p for k, p in resources(default_app, "AWS::IAM::Policy").items() if k.startswith("PrepRole"))
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    object_resources = [
        s["Resource"] for s in statements if any(a.startswith("s3:") and a != "s3:ListBucket" for a in s["Action"])
    ]
    assert object_resources == [{"Fn::Join": ["", [{"Fn::GetAtt": [BUCKET_ID, "Arn"]}, "/datasets/*"]]}]
    listing = next(s for s in statements if s["Action"] == "s3:ListBucket")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["datasets/*"]}}
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert not any(a.endswith("*") for a in actions)
    roles = resources(default_app, "AWS::IAM::Role")
    prep_role = next(r for k, r in roles.items() if k.startswith("PrepRole"))
    assert "ManagedPolicyArns" not in prep_role["Properties"]
