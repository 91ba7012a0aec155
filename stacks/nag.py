"""cdk-nag wiring: the AwsSolutions pack as a CDK validation plugin, and specific acknowledgements; and the
acknowledgements of the independent IaC scanner (checkov), written into the templates where it reads them.

cdk-nag 3 reports through `Validations`: an unacknowledged finding makes `app.synth()` fail. Each
acknowledgement names one finding (rule id plus, for IAM5, the exact action or resource) and says why. The
scanner runs over the synthesized templates (tests/test_scanner.py, `make test-e2e`); its acknowledgements are
template metadata, one check id and reason per resource.
"""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import jsii
from cdk_nag import AwsSolutionsChecks
from constructs import Construct, IConstruct, IValidation


def add_nag_checks(app: cdk.App) -> None:
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True))
    cdk.Aspects.of(app).add(AcknowledgeLambdaScannerFindings())


def acknowledge(construct: IConstruct, finding: str, reason: str) -> None:
    cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=finding, reason=reason))


@jsii.implements(IValidation)
class _Refusal:
    def __init__(self, message: str) -> None:
        self.message = message

    def validate(self) -> list[str]:
        return [self.message]


def fail_synth(construct: IConstruct, message: str) -> None:
    """Make `app.synth()` fail with `message`, reported at `construct` (a construct validation, checked once the
    whole app exists)."""
    construct.node.add_validation(_Refusal(message))


def nag_resource(stack: cdk.Stack, value: str) -> str:
    """How cdk-nag spells a (possibly tokenized) resource in an IAM5 finding: references as `<LogicalId>` or
    `<LogicalId.Attribute>`, pseudo parameters as `<AWS::AccountId>`, other intrinsics (the `Fn::GetStackOutput` of
    this app's weak cross-stack references) as their compact JSON."""
    resolved = stack.resolve(value)
    parts: list[Any] = resolved["Fn::Join"][1] if isinstance(resolved, dict) and "Fn::Join" in resolved else [resolved]
    return "".join(_spell(part) for part in parts)


def _spell(part: Any) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, dict) and "Ref" in part:
        return f"<{part['Ref']}>"
    if isinstance(part, dict) and "Fn::GetAtt" in part:
        return f"<{'.'.join(part['Fn::GetAtt'])}>"
    return json.dumps(part, separators=(",", ":"))


@jsii.implements(IValidation)
class _AcknowledgeWhenResolved:
    def __init__(self, construct: Construct, findings: list[tuple[str, str]]) -> None:
        self.construct = construct
        self.findings = findings

    def validate(self) -> list[str]:
        stack = cdk.Stack.of(self.construct)
        for resource, reason in self.findings:
            acknowledge(self.construct, f"AwsSolutions-IAM5[Resource::{nag_resource(stack, resource)}]", reason)
        return []


def acknowledge_wildcards(construct: Construct, findings: list[tuple[str, str]]) -> None:
    """Acknowledge IAM5 for each (resource, reason): one finding per wildcard resource, never the rule wholesale.

    A resource that refers only to its own stack is acknowledged at once, so the template's cdk_nag metadata
    shows it. One that refers to another stack's resource gets its final form only when the app is prepared for
    synthesis, after construction: it is acknowledged from a construct validation, which runs after that and before
    the cdk-nag plugin (the acknowledgement then appears in the stack's metadata.json only).
    """
    stack = cdk.Stack.of(construct)
    later = [(resource, reason) for resource, reason in findings if _refers_to_other_stacks(stack, resource)]
    for resource, reason in findings:
        if (resource, reason) not in later:
            acknowledge(construct, f"AwsSolutions-IAM5[Resource::{nag_resource(stack, resource)}]", reason)
    if later:
        construct.node.add_validation(_AcknowledgeWhenResolved(construct, later))


def _refers_to_other_stacks(stack: cdk.Stack, value: str) -> bool:
    local = {
        stack.resolve(element.logical_id) for element in stack.node.find_all() if isinstance(element, cdk.CfnElement)
    }
    return any(logical_id not in local for logical_id in _references(stack.resolve(value)))


def _references(resolved: Any) -> list[str]:
    """Logical ids that a resolved value refers to (pseudo parameters such as AWS::AccountId left out)."""
    if isinstance(resolved, list):
        return [ref for item in resolved for ref in _references(item)]
    if not isinstance(resolved, dict):
        return []
    if "Ref" in resolved:
        return [] if str(resolved["Ref"]).startswith("AWS::") else [str(resolved["Ref"])]
    if "Fn::GetAtt" in resolved:
        return [str(resolved["Fn::GetAtt"][0])]
    return [ref for item in resolved.values() for ref in _references(item)]


# --- the independent IaC scanner (checkov) ---------------------------------------------------------------------
# checkov reads a CloudFormation resource's `Metadata: {checkov: {skip: [{id, comment}]}}` (checkov/cloudformation/
# context_parser.py, `collect_skip_comments`) and reports the check as skipped with that comment.


def acknowledge_scanner(resource: cdk.CfnResource, check: str, reason: str) -> None:
    """Acknowledge one scanner check on one resource, with its reason, in the template the scanner reads."""
    metadata = resource.get_metadata("checkov") or {}
    skips = [entry for entry in metadata.get("skip", []) if entry["id"] != check]
    resource.add_metadata("checkov", {**metadata, "skip": [*skips, {"id": check, "comment": reason}]})


# Why no function of this project needs what the scanner asks of every Lambda function: the prep (invoked by its
# deploy-time trigger and by the state machine) and the custom-resource handlers, the CDK's and ours (invoked by
# CloudFormation). The reasons hold for these functions only, so they are acknowledged on these only.
LAMBDA_FINDINGS = {
    "CKV_AWS_116": "Every failure already reaches someone without a queue: the state machine and the deploy-time "
    "trigger invoke the function and wait for its result, and custom-resource handlers report to CloudFormation, "
    "whose stack operation then fails. A dead-letter queue would only keep events that nobody replays.",
    "CKV_AWS_117": "It calls AWS APIs only (S3, SageMaker, Step Functions, CloudFormation's response URL) plus, for "
    "the prep, the public dataset download: the project has no VPC, and one would add NAT gateways billed by the hour.",
    "CKV_AWS_115": "No reserved concurrency on purpose: reserving any can fail the deployment in accounts whose "
    "unreserved concurrency is at its minimum (DESIGN.md section 6), and it runs once per deployment or training run.",
    "CKV_AWS_173": "Its environment holds resource names and ARNs (the prep's also a public URL and a checksum), no "
    "secret; Lambda encrypts environment variables at rest with its AWS-managed key already.",
}
# The functions those reasons were written for, by construct path within their stack (what LAMBDA_FINDINGS says of
# each holds: who invokes it and what it calls). CDK's two singleton providers have fixed construct ids
# (aws-cdk-lib's CustomResourceProvider, created by `triggers.Trigger` and by a bucket's `auto_delete_objects`).
KNOWN_FUNCTIONS = {
    "Prep/Function/Resource": "the dataset prep (stacks/constructs/dataset_prep.py)",
    "AWSCDK.TriggerCustomResourceProviderCustomResourceProvider/Handler": "CDK's trigger provider (the prep's "
    "deploy-time trigger)",
    "Custom::S3AutoDeleteObjectsCustomResourceProvider/Handler": "CDK's bucket auto-delete provider",
    "StopOnDelete/Function/Resource": "the stop-on-delete handler (stacks/constructs/training_stop_on_delete.py)",
    "StopOnDelete/Provider/framework-onEvent/Resource": "the stop-on-delete handler's provider framework",
}


def stack_path(construct: IConstruct) -> str:
    """The construct's path below its stack (`Prep/Function/Resource`), the same whatever the stack is named."""
    stack = cdk.Stack.of(construct)
    return construct.node.path.removeprefix(f"{stack.node.path}/")


@jsii.implements(cdk.IAspect)
class AcknowledgeLambdaScannerFindings:
    """Acknowledges the scanner's Lambda checks on the known functions, each only where its finding applies; any
    other function fails synth, naming it, so that a new function gets its own review instead of these reasons."""

    def visit(self, node: IConstruct) -> None:
        if not (isinstance(node, cdk.CfnResource) and node.cfn_resource_type == "AWS::Lambda::Function"):
            return
        if stack_path(node) not in KNOWN_FUNCTIONS:
            fail_synth(
                node,
                f"Lambda function {node.node.path} is not one of stacks/nag.py KNOWN_FUNCTIONS, whose reasons for the "
                "scanner's Lambda checks (CKV_AWS_115/116/117/173) were written for those functions only: give it a "
                "dead-letter queue, VPC, concurrency and environment key, or add it to KNOWN_FUNCTIONS with the "
                "reasons checked for it",
            )
            return
        properties = _properties(node)
        checks = ["CKV_AWS_116", "CKV_AWS_117"]
        if _property(properties, "ReservedConcurrentExecutions") is None:
            checks.append("CKV_AWS_115")
        if _property(_property(properties, "Environment") or {}, "Variables"):
            checks.append("CKV_AWS_173")
        for check in checks:
            acknowledge_scanner(node, check, LAMBDA_FINDINGS[check])


def _properties(resource: cdk.CfnResource) -> dict[str, Any]:
    """A resource's properties as they will be rendered: an L1's attributes hide lazy values (an L2 function's
    environment is one), the protected `cfnProperties` resolved does not."""
    resolved = cdk.Stack.of(resource).resolve(jsii.get(resource, "cfnProperties"))
    return resolved if isinstance(resolved, dict) else {}


def _property(properties: dict[str, Any], name: str) -> Any:
    # L1 classes name them (nested ones too) in camelCase, a plain CfnResource as CloudFormation does.
    return properties.get(name[0].lower() + name[1:], properties.get(name))
