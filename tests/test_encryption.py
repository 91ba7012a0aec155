"""Every log group and SNS topic is encrypted with a key (or acknowledged, with its reason, for the scanner), and
each key is usable by exactly those who write with it: CloudWatch Logs for log groups, the alarm service where an
alarm notifies a topic, and every role allowed to publish to the topic. Checked in every tested configuration."""

from __future__ import annotations

from typing import Any

import pytest

from tests.synth import CONFIGURATIONS, STACKS, synth

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


@pytest.mark.parametrize(("name", "stack"), PAIRS, ids=IDS)
def test_every_log_group_has_a_key_of_its_stack_or_a_reason(resources: dict[str, dict[str, Any]]) -> None:
    for logical_id, group in of_type(resources, "AWS::Logs::LogGroup").items():
        if "KmsKeyId" not in group["Properties"]:
            assert len(scanner_reason(group, "CKV_AWS_158")) >= 40, logical_id
            continue
        # A key of the same template: CloudFormation deletes the group before the key it refers to, so no group
        # outlives its key once the key is scheduled for deletion.
        key_id = key_of(group["Properties"]["KmsKeyId"], resources)
        (grant,) = service_statements(resources, key_id, "logs.")
        assert "kms:EncryptionContext:aws:logs:arn" in grant["Condition"]["ArnLike"], "log groups only"


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
    resources: dict[str, dict[str, Any]],
) -> None:
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


@pytest.mark.parametrize(("name", "stack"), PAIRS, ids=IDS)
def test_keys_rotate_and_are_scheduled_for_deletion_with_the_stack(
    name: str, resources: dict[str, dict[str, Any]]
) -> None:
    for logical_id, key in of_type(resources, "AWS::KMS::Key").items():
        assert key["Properties"]["EnableKeyRotation"] is True, logical_id
        assert key["Properties"]["PendingWindowInDays"] == 7, logical_id
        retained_with_data = logical_id.startswith("StoreKey") and CONFIGURATIONS[name].get("retain_data")
        assert key["DeletionPolicy"] == ("Retain" if retained_with_data else "Delete"), logical_id
