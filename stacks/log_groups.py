"""Every Lambda function's log group is a CloudFormation resource with a retention, deleted with its stack.

The CDK's own provider functions (bucket auto-delete, triggers, custom resource frameworks) log to
`/aws/lambda/<name>`, which Lambda would create on first use outside CloudFormation, without retention, and leave
behind after `cdk destroy`. This aspect declares that group for each function with no log group of its own, and
makes every custom resource in the stack depend on it, so that on deletion the provider still has its group while it
runs and the group goes only after the provider's last invocation.
"""

from __future__ import annotations

import aws_cdk as cdk
import jsii
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct, IConstruct

RETENTION = logs.RetentionDays.ONE_MONTH


def log_group(scope: Construct, construct_id: str, *, name: str | None = None) -> logs.LogGroup:
    """A log group of this project: a month's retention, deleted with its stack."""
    return logs.LogGroup(
        scope, construct_id, log_group_name=name, retention=RETENTION, removal_policy=cdk.RemovalPolicy.DESTROY
    )


def lambda_role(scope: Construct, construct_id: str, group: logs.ILogGroup) -> iam.Role:
    """A Lambda function's role that may write to its own log group and nothing else (no managed policy)."""
    role = iam.Role(scope, construct_id, assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    role.add_to_policy(
        iam.PolicyStatement(actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[group.log_group_arn])
    )
    return role


@jsii.implements(cdk.IAspect)
class DeclareFunctionLogGroups:
    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, cdk.Stack):
            return
        stack = node
        declared: list[logs.LogGroup] = []
        for construct in stack.node.find_all():
            if isinstance(construct, cdk.CfnResource) and construct.cfn_resource_type == "AWS::Lambda::Function":
                scope = construct.node.scope
                group_id = f"{construct.node.id}LogGroup"
                if scope is None or scope.node.try_find_child(group_id) or _has_logging_config(construct):
                    continue
                group = log_group(
                    scope,  # type: ignore[arg-type]
                    group_id,
                    name=cdk.Fn.join("", ["/aws/lambda/", construct.ref]),
                )
                declared.append(group)
        if not declared:
            return
        for construct in stack.node.find_all():
            if isinstance(construct, cdk.CfnResource) and _is_custom_resource(construct.cfn_resource_type):
                for group in declared:
                    construct.node.add_dependency(group)


def _has_logging_config(function: cdk.CfnResource) -> bool:
    if isinstance(function, lambda_.CfnFunction):
        return function.logging_config is not None
    return False


def _is_custom_resource(resource_type: str) -> bool:
    return resource_type.startswith("Custom::") or resource_type == "AWS::CloudFormation::CustomResource"
