"""cdk-nag AwsSolutions: no unacknowledged finding in any configuration, every acknowledgement is specific,
and a new finding really fails synth (cdk-nag 3 reports through CDK's Validations)."""

from __future__ import annotations

import json
import re

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns

from config import load_settings
from stacks.app_builder import build_pipeline
from stacks.nag import KNOWN_FUNCTIONS, stack_path
from tests.synth import CONFIGURATIONS, context_with, synth


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_no_unacknowledged_findings(name: str) -> None:
    report = json.loads((synth(**CONFIGURATIONS[name]).outdir / "validation-report.json").read_text())
    violations = [v["ruleName"] for plugin in report["pluginReports"] for v in plugin["violations"]]
    assert violations == []


GENERIC_REASONS = re.compile(r"^(ok|n/?a|todo|fine|suppressed|not needed|false positive)\.?$", re.IGNORECASE)


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_every_acknowledgement_names_a_finding_and_a_specific_reason(name: str) -> None:
    app = synth(**CONFIGURATIONS[name])
    in_templates = [
        rule
        for template in app.templates.values()
        for resource in template["Resources"].values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    # Every acknowledgement, also those made once cross-stack references resolve (not in the template metadata).
    in_metadata = [
        {"id": key.removeprefix("Annotation::"), "reason": reason}
        for stack in app.templates
        for entries in json.loads((app.outdir / f"{stack}.metadata.json").read_text()).values()
        for entry in entries
        if entry["type"] == "aws:cdk:acknowledged-rules"
        for key, reason in entry["data"].items()
    ]
    assert in_templates and in_metadata
    acknowledged = in_templates + in_metadata
    for rule in acknowledged:
        assert re.fullmatch(r"AwsSolutions-[A-Z]+\d+(\[.+\])?", rule["id"]), rule
        assert len(rule["reason"]) >= 40 and not GENERIC_REASONS.match(rule["reason"]), rule
        if rule["id"].startswith("AwsSolutions-IAM5"):
            assert "[" in rule["id"], f"IAM5 must be acknowledged per finding, not wholesale: {rule}"


def test_a_new_finding_fails_synth(tmp_path: object) -> None:
    context = context_with()
    app = cdk.App(outdir=str(tmp_path), context=context)
    stacks = build_pipeline(app, load_settings(context))
    sns.Topic(stacks.dataset, "TopicWithoutTls")
    with pytest.raises(RuntimeError, match=r"ValidationFailed(.|\n)*AwsSolutions-SNS3"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())  # type: ignore[operator]
    rules = {v["ruleName"] for plugin in report["pluginReports"] for v in plugin["violations"]}
    assert "AwsSolutions-SNS3" in rules


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_every_scanner_acknowledgement_names_one_check_and_a_specific_reason(name: str) -> None:
    app = synth(**CONFIGURATIONS[name])
    skips = [
        (logical_id, skip)
        for template in app.templates.values()
        for logical_id, resource in template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips
    for logical_id, skip in skips:
        assert set(skip) == {"id", "comment"}, (logical_id, skip)
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (logical_id, skip)
        assert len(skip["comment"]) >= 40 and not GENERIC_REASONS.match(skip["comment"]), (logical_id, skip)
    assert len(skips) == len({(logical_id, skip["id"]) for logical_id, skip in skips}), "one entry per check"


def test_lambda_scanner_acknowledgements_apply_only_where_the_finding_does() -> None:
    app = synth()
    functions = {
        logical_id: resource
        for template in app.templates.values()
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }
    assert functions
    for logical_id, function in functions.items():
        acknowledged = {skip["id"] for skip in function["Metadata"]["checkov"]["skip"]}
        expected = {"CKV_AWS_116", "CKV_AWS_117"}
        if "ReservedConcurrentExecutions" not in function["Properties"]:
            expected.add("CKV_AWS_115")
        if function["Properties"].get("Environment", {}).get("Variables"):
            expected.add("CKV_AWS_173")
        assert acknowledged == expected, logical_id


def test_a_lambda_function_not_known_to_the_scanner_acknowledgements_fails_synth(tmp_path: object) -> None:
    """The Lambda acknowledgements' reasons were written for the project's five functions: a new function is not
    silently covered by them, synth names it."""
    context = context_with()
    app = cdk.App(outdir=str(tmp_path), context=context)
    stacks = build_pipeline(app, load_settings(context))
    lambda_.Function(
        stacks.training,
        "Unreviewed",
        runtime=lambda_.Runtime.PYTHON_3_14,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return None\n"),
    )
    with pytest.raises(RuntimeError, match=r"LegalGptjTraining/Unreviewed/Resource is not one of stacks/nag.py"):
        app.synth()


def test_every_known_function_exists_in_some_configuration() -> None:
    """KNOWN_FUNCTIONS lists no function the app no longer has (a stale entry would cover a future one)."""
    paths = set()
    for name in sorted(CONFIGURATIONS):
        context = context_with(**CONFIGURATIONS[name])
        app = cdk.App(context=context)
        build_pipeline(app, load_settings(context))
        paths |= {
            stack_path(c)
            for c in app.node.find_all()
            if isinstance(c, cdk.CfnResource) and c.cfn_resource_type == "AWS::Lambda::Function"
        }
    assert paths == set(KNOWN_FUNCTIONS)
