"""cdk-nag wiring: the AwsSolutions pack as a CDK validation plugin, and specific acknowledgements.

cdk-nag 3 reports through `Validations`: an unacknowledged finding makes `app.synth()` fail. Each
acknowledgement names one finding (rule id plus, for IAM5, the exact action or resource) and says why.
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


def acknowledge(construct: IConstruct, finding: str, reason: str) -> None:
    cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=finding, reason=reason))


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
