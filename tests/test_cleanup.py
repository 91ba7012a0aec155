"""`cdk destroy --all` leaves nothing that bills: checked over every template of every configuration the suite uses."""

from __future__ import annotations

from typing import Any

import pytest

from tests.synth import CONFIGURATIONS, STACKS, synth

STATEFUL_TYPES = {"AWS::S3::Bucket", "AWS::KMS::Key"}
# Creating any of these outside CloudFormation would leave something billing after `cdk destroy`.
BILLABLE_CREATE_ACTIONS = {
    "sagemaker:CreateEndpoint",
    "sagemaker:CreateEndpointConfig",
    "sagemaker:CreateModel",
    "sagemaker:CreateInferenceComponent",
    "sagemaker:CreateNotebookInstance",
    "sagemaker:CreateTransformJob",
    "sagemaker:CreateProcessingJob",
    "sagemaker:CreateCompilationJob",
    "ec2:RunInstances",
    "ec2:CreateVolume",
    "ec2:CreateNatGateway",
    "rds:CreateDBInstance",
    "logs:CreateLogGroup",
}


PAIRS = [(name, stack) for name in sorted(CONFIGURATIONS) for stack in sorted(STACKS)]
IDS = [f"{name}-{stack}" for name, stack in PAIRS]


@pytest.fixture
def template(name: str, stack: str) -> dict[str, Any]:
    """The stack's template in that configuration (synthesized once per configuration, when a test first needs it)."""
    return synth(**CONFIGURATIONS[name]).templates[stack]


@pytest.mark.parametrize(("name", "stack"), PAIRS, ids=IDS)
def test_nothing_is_retained_unless_configured(name: str, stack: str, template: dict[str, Any]) -> None:
    retained = {
        logical_id: resource["Type"]
        for logical_id, resource in template["Resources"].items()
        if resource.get("DeletionPolicy", "Delete") != "Delete"
        or resource.get("UpdateReplacePolicy", "Delete") != "Delete"
    }
    if CONFIGURATIONS[name].get("retain_data"):
        assert set(retained.values()) <= STATEFUL_TYPES
    else:
        assert retained == {}


@pytest.mark.parametrize(("name", "stack"), PAIRS, ids=IDS)
def test_every_log_group_has_retention_and_is_deleted(name: str, stack: str, template: dict[str, Any]) -> None:
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Logs::LogGroup":
            assert resource["Properties"].get("RetentionInDays"), logical_id
            assert resource.get("DeletionPolicy") == "Delete", logical_id


@pytest.mark.parametrize(("name", "stack"), PAIRS, ids=IDS)
def test_every_function_logs_to_a_group_of_the_stack(name: str, stack: str, template: dict[str, Any]) -> None:
    resources = template["Resources"]
    declared_names = [
        r["Properties"].get("LogGroupName") for r in resources.values() if r["Type"] == "AWS::Logs::LogGroup"
    ]
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        configured = resource["Properties"].get("LoggingConfig", {}).get("LogGroup")
        implicit = {"Fn::Join": ["", ["/aws/lambda/", {"Ref": logical_id}]]}
        if configured:
            assert configured["Ref"] in resources, logical_id
        else:
            assert implicit in declared_names, f"{logical_id} would log to a group CloudFormation does not own"


@pytest.mark.parametrize(("name", "stack"), PAIRS, ids=IDS)
def test_buckets_empty_themselves_on_destroy(name: str, stack: str, template: dict[str, Any]) -> None:
    resources = template["Resources"]
    buckets = {k for k, r in resources.items() if r["Type"] == "AWS::S3::Bucket"}
    emptied = {
        r["Properties"]["BucketName"]["Ref"] for r in resources.values() if r["Type"] == "Custom::S3AutoDeleteObjects"
    }
    assert emptied == (set() if CONFIGURATIONS[name].get("retain_data") else buckets)


@pytest.mark.parametrize(("name", "stack"), PAIRS, ids=IDS)
def test_nothing_billable_is_created_outside_cloudformation(name: str, stack: str, template: dict[str, Any]) -> None:
    granted = set()
    for resource in template["Resources"].values():
        documents = []
        if resource["Type"] == "AWS::IAM::Policy":
            documents.append(resource["Properties"]["PolicyDocument"])
        if resource["Type"] == "AWS::IAM::Role":
            documents += [p["PolicyDocument"] for p in resource["Properties"].get("Policies", [])]
        for document in documents:
            for statement in document["Statement"]:
                if statement["Effect"] == "Allow":
                    actions = statement["Action"]
                    granted |= {actions} if isinstance(actions, str) else set(actions)
    assert not any(action.endswith(("*", ":Create*")) and action.startswith("sagemaker:") for action in granted)
    assert granted.isdisjoint(BILLABLE_CREATE_ACTIONS)
