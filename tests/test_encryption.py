"""Every log group and SNS topic is encrypted with a key (or acknowledged, with its reason, for the scanner), and
each key is usable by exactly those who write with it: CloudWatch Logs for log groups, the alarm service where an
alarm notifies a topic, and every role allowed to publish to the topic. Checked in every tested configuration."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_

from stacks.constructs.notification_topic import NotificationTopic
from stacks.log_groups import DeclareFunctionLogGroups, telemetry_key
from tests.synth import CDK_CONTEXT, CONFIGURATIONS, STACKS, context_with, synth

PAIRS = [(name, stack) for name in sorted(CONFIGURATIONS) for stack in sorted(STACKS)]
IDS = [f"{name}-{stack}" for name, stack in PAIRS]
PUBLISH_KEY_ACTIONS = {"kms:Decrypt", "kms:GenerateDataKey"}


@pytest.fixture
def resources(name: str, stack: str) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = synth(**CONFIGURATIONS[name]).templates[stack]["Resources"]
    return result


def of_type(resources: dict[str, dict[str, Any]], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in resources.items() if v["Type"] == resource_type}


def scanner_reason(resource: dict[str, Any], check: str) -> str:
    skips = resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    return next((skip["comment"] for skip in skips if skip["id"] == check), "")


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def key_of(reference: Any, resources: dict[str, dict[str, Any]]) -> str:
    """The logical id of the key of this stack that `reference` (a KmsKeyId) names."""
    assert isinstance(reference, dict) and "Fn::GetAtt" in reference, reference
    key_id, attribute = reference["Fn::GetAtt"]
    assert attribute == "Arn" and resources[key_id]["Type"] == "AWS::KMS::Key"
    return str(key_id)


def key_policy(resources: dict[str, dict[str, Any]], key_id: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = resources[key_id]["Properties"]["KeyPolicy"]["Statement"]
    return statements


def service_statements(resources: dict[str, dict[str, Any]], key_id: str, service: str) -> list[dict[str, Any]]:
    return [
        s
        for s in key_policy(resources, key_id)
        if s["Effect"] == "Allow" and service in str(s.get("Principal", {}).get("Service", ""))
    ]


def region_of(name: str) -> str:
    return str(CONFIGURATIONS[name].get("region", CDK_CONTEXT["region"]))


ACCOUNT_ROOT = {
    "Action": "kms:*",
    "Effect": "Allow",
    "Principal": {"AWS": {"Fn::Join": ["", ["arn:aws:iam::", {"Ref": "AWS::AccountId"}, ":root"]]}},
    "Resource": "*",
}
ALARMS_STATEMENT = {
    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
    "Effect": "Allow",
    "Principal": {"Service": "cloudwatch.amazonaws.com"},
    "Resource": "*",
    "Sid": "CloudWatchAlarms",
}


def logs_statement(region: str) -> dict[str, Any]:
    """CloudWatch Logs of the stack's region, for log groups of the stack's account only (the encryption context
    CloudWatch Logs sends names the group)."""
    return {
        "Action": ["kms:Decrypt*", "kms:Describe*", "kms:Encrypt*", "kms:GenerateDataKey*", "kms:ReEncrypt*"],
        "Condition": {
            "ArnLike": {
                "kms:EncryptionContext:aws:logs:arn": {
                    "Fn::Join": ["", [f"arn:aws:logs:{region}:", {"Ref": "AWS::AccountId"}, ":log-group:*"]]
                }
            }
        },
        "Effect": "Allow",
        "Principal": {"Service": f"logs.{region}.amazonaws.com"},
        "Resource": "*",
        "Sid": "CloudWatchLogsOfThisAccount",
    }


@pytest.mark.parametrize(("name", "stack"), PAIRS, ids=IDS)
def test_each_key_grants_exactly_what_its_stack_uses_it_for(name: str, resources: dict[str, dict[str, Any]]) -> None:
    """The account (CDK's default statement, which IAM policies build on), CloudWatch Logs where a log group of the
    stack uses the key, the alarm service where an alarm notifies a topic encrypted with it; nothing else."""
    for key_id in of_type(resources, "AWS::KMS::Key"):
        arn = {"Fn::GetAtt": [key_id, "Arn"]}
        expected = [ACCOUNT_ROOT]
        if any(g["Properties"].get("KmsKeyId") == arn for g in of_type(resources, "AWS::Logs::LogGroup").values()):
            expected.append(logs_statement(region_of(name)))
        alarmed_topics = {
            action["Ref"]
            for alarm in of_type(resources, "AWS::CloudWatch::Alarm").values()
            for action in listed(alarm["Properties"].get("AlarmActions", []))
        }
        if any(resources[t]["Properties"].get("KmsMasterKeyId") == arn for t in alarmed_topics):
            expected.append(ALARMS_STATEMENT)
        assert key_policy(resources, key_id) == expected, key_id


@pytest.mark.parametrize(("name", "stack"), PAIRS, ids=IDS)
def test_every_log_group_has_a_key_of_its_stack_or_a_reason(name: str, resources: dict[str, dict[str, Any]]) -> None:
    for logical_id, group in of_type(resources, "AWS::Logs::LogGroup").items():
        if "KmsKeyId" not in group["Properties"]:
            assert len(scanner_reason(group, "CKV_AWS_158")) >= 40, logical_id
            continue
        # A key of the same template: CloudFormation deletes the group before the key it refers to, so no group
        # outlives its key once the key is scheduled for deletion.
        key_id = key_of(group["Properties"]["KmsKeyId"], resources)
        (grant,) = service_statements(resources, key_id, "logs.")
        assert grant == logs_statement(region_of(name)), "CloudWatch Logs of this region, for this account's groups"


@pytest.mark.parametrize(("name", "stack"), PAIRS, ids=IDS)
def test_every_topic_is_encrypted_or_acknowledged(resources: dict[str, dict[str, Any]]) -> None:
    topics = of_type(resources, "AWS::SNS::Topic")
    assert topics, "every stack notifies through its own topic"
    for logical_id, topic in topics.items():
        key = topic["Properties"].get("KmsMasterKeyId")
        assert key or len(scanner_reason(topic, "CKV_AWS_26")) >= 40, logical_id


@pytest.mark.parametrize(("name", "stack"), PAIRS, ids=IDS)
def test_alarms_may_use_the_key_of_the_topic_they_notify_and_nothing_else_may(
    resources: dict[str, dict[str, Any]],
) -> None:
    alarmed_keys = set()
    for logical_id, alarm in of_type(resources, "AWS::CloudWatch::Alarm").items():
        for action in listed(alarm["Properties"].get("AlarmActions", [])):
            topic = resources[action["Ref"]]["Properties"]
            # The AWS-managed SNS key does not let CloudWatch alarms publish: their notices would be lost.
            key_id = key_of(topic.get("KmsMasterKeyId"), resources)
            (grant,) = service_statements(resources, key_id, "cloudwatch.amazonaws.com")
            assert set(listed(grant["Action"])) == PUBLISH_KEY_ACTIONS, logical_id
            alarmed_keys.add(key_id)
    for key_id in of_type(resources, "AWS::KMS::Key"):
        if key_id not in alarmed_keys:
            assert service_statements(resources, key_id, "cloudwatch.amazonaws.com") == [], key_id


@pytest.mark.parametrize(("name", "stack"), PAIRS, ids=IDS)
def test_every_role_that_may_publish_to_an_encrypted_topic_may_use_its_key(
    stack: str, resources: dict[str, dict[str, Any]]
) -> None:
    publishers = []
    keys = {
        topic_id: key_of(topic["Properties"]["KmsMasterKeyId"], resources)
        for topic_id, topic in of_type(resources, "AWS::SNS::Topic").items()
        if isinstance(topic["Properties"].get("KmsMasterKeyId"), dict)
    }
    for logical_id, policy in of_type(resources, "AWS::IAM::Policy").items():
        statements = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
        for statement in statements:
            if "sns:Publish" not in listed(statement["Action"]):
                continue
            for resource in listed(statement["Resource"]):
                if isinstance(resource, dict) and resource.get("Ref") in keys:
                    key_arn = {"Fn::GetAtt": [keys[resource["Ref"]], "Arn"]}
                    assert any(
                        set(listed(s["Action"])) >= PUBLISH_KEY_ACTIONS and key_arn in listed(s["Resource"])
                        for s in statements
                    ), logical_id
                    publishers.append(logical_id)
    # The training pipeline's state machine publishes its failures itself: the check above has one role to check.
    assert bool(publishers) == (stack == "LegalGptjTraining"), publishers


@pytest.mark.parametrize(("name", "stack"), PAIRS, ids=IDS)
def test_keys_rotate_and_are_scheduled_for_deletion_with_the_stack(
    name: str, resources: dict[str, dict[str, Any]]
) -> None:
    for logical_id, key in of_type(resources, "AWS::KMS::Key").items():
        assert key["Properties"]["EnableKeyRotation"] is True, logical_id
        assert key["Properties"]["PendingWindowInDays"] == 7, logical_id
        retained_with_data = logical_id.startswith("StoreKey") and CONFIGURATIONS[name].get("retain_data")
        assert key["DeletionPolicy"] == ("Retain" if retained_with_data else "Delete"), logical_id


# --- the topic's key is chosen where the topic is created -----------------------------------------------------


def probe_stack(aspect_first: bool | None = None) -> tuple[cdk.App, cdk.Stack, NotificationTopic]:
    """A stack whose only log group is one DeclareFunctionLogGroups declares (for a function without one), the
    aspect added to the stack before the topic's own aspect, after it, or not at all (None)."""
    app = cdk.App(context=context_with())
    stack = cdk.Stack(app, "Probe", env=cdk.Environment(region="us-east-1"))
    if aspect_first:
        cdk.Aspects.of(stack).add(DeclareFunctionLogGroups())
    topic = NotificationTopic(stack, "Notifications", email="")
    if aspect_first is False:
        cdk.Aspects.of(stack).add(DeclareFunctionLogGroups())
    if aspect_first is not None:
        # An L1 function, as the CDK's provider functions are: no log group until the aspect declares one.
        lambda_.CfnFunction(
            stack,
            "Function",
            role="arn:aws:iam::123456789012:role/probe",
            runtime="python3.14",
            handler="index.handler",
            code=lambda_.CfnFunction.CodeProperty(zip_file="def handler(event, context):\n    return None\n"),
        )
    return app, stack, topic


def probe_resources(app: cdk.App) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = app.synth().get_stack_by_name("Probe").template["Resources"]
    return result


def test_a_topic_uses_its_stacks_key_even_when_nothing_else_created_it() -> None:
    app, stack, topic = probe_stack()
    resources = probe_resources(app)
    (key_id,) = of_type(resources, "AWS::KMS::Key")
    (cfn_topic,) = of_type(resources, "AWS::SNS::Topic").values()
    assert cfn_topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert topic.key is telemetry_key(stack)


@pytest.mark.parametrize("aspect_first", [True, False])
def test_the_topics_key_does_not_depend_on_which_aspect_runs_first(aspect_first: bool) -> None:
    app, _, _ = probe_stack(aspect_first)
    resources = probe_resources(app)
    (key_id,) = of_type(resources, "AWS::KMS::Key")
    (cfn_topic,) = of_type(resources, "AWS::SNS::Topic").values()
    assert cfn_topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    (group,) = of_type(resources, "AWS::Logs::LogGroup").values()
    assert group["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}


def test_a_topic_on_the_aws_managed_key_holds_no_key_and_refuses_alarms() -> None:
    app = cdk.App(context=context_with())
    stack = cdk.Stack(app, "Probe", env=cdk.Environment(region="us-east-1"))
    topic = NotificationTopic(stack, "Notifications", email="", stack_key=False)
    resources = probe_resources(app)
    assert of_type(resources, "AWS::KMS::Key") == {}
    assert [t["Properties"]["KmsMasterKeyId"] for t in of_type(resources, "AWS::SNS::Topic").values()] == [
        "alias/aws/sns"
    ]
    alarm = cloudwatch.Alarm(
        stack,
        "Alarm",
        metric=cloudwatch.Metric(namespace="Probe", metric_name="Errors"),
        threshold=1,
        evaluation_periods=1,
    )
    alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic.topic))
    with pytest.raises(RuntimeError, match=r"CloudWatch alarms notify Probe/Notifications/Topic, encrypted with"):
        app.synth(force=True)
