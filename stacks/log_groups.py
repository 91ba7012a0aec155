"""Every log group is a CloudFormation resource with a retention, encrypted with its stack's key, deleted with it.

The CDK's own provider functions (bucket auto-delete, triggers, custom resource frameworks) log to
`/aws/lambda/<name>`, which Lambda would create on first use outside CloudFormation, without retention, and leave
behind after `cdk destroy`. This aspect declares that group for each function with no log group of its own, and
makes every custom resource in the stack depend on it, so that on deletion the provider still has its group while it
runs and the group goes only after the provider's last invocation.

Each stack has one customer-managed key for what it logs and notifies (`telemetry_key`): its log groups and its
SNS topic. Separate from the dataset key on purpose: that one guards the data, is granted to the jobs and endpoints
that read it and is retained with it; this one is granted to CloudWatch Logs only (and, where an alarm or a state
machine publishes to the topic, to those publishers, see notification_topic.py), and always goes with its stack.
CloudFormation deletes every group before the key (each group refers to it), so no group outlives its key when
the key is scheduled for deletion.
"""

from __future__ import annotations

import aws_cdk as cdk
import jsii
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk.region_info import RegionInfo
from constructs import Construct, IConstruct

RETENTION = logs.RetentionDays.ONE_MONTH
TELEMETRY_KEY_ID = "TelemetryKey"
# KMS's shortest waiting period: the key encrypts only logs and notices, which go with the stack anyway.
KEY_PENDING_DAYS = 7
# What CloudWatch Logs needs of a key to encrypt and read a group (the CloudWatch Logs user guide's key policy).
LOGS_KEY_ACTIONS = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]


def telemetry_key(scope: Construct) -> kms.Key:
    """The one key of `scope`'s stack for its log groups and notification topic, created on first use."""
    stack = cdk.Stack.of(scope)
    existing = stack.node.try_find_child(TELEMETRY_KEY_ID)
    if isinstance(existing, kms.Key):
        return existing
    return kms.Key(
        stack,
        TELEMETRY_KEY_ID,
        description=f"Encrypts the log groups and notification topic of {stack.stack_name}",
        enable_key_rotation=True,
        pending_window=cdk.Duration.days(KEY_PENDING_DAYS),
        removal_policy=cdk.RemovalPolicy.DESTROY,
    )


def _let_cloudwatch_logs_use(key: kms.Key) -> None:
    """CloudWatch Logs of this account and region may use the key, for log groups only (its encryption context).

    Every log group of the stack asks for it; the key's policy holds it once, as the CDK's policy documents drop a
    statement identical to an earlier one when they are rendered."""
    stack = cdk.Stack.of(key)
    groups = stack.format_arn(
        service="logs", resource="log-group", resource_name="*", arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchLogsOfThisAccount",
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.{_domain_suffix(stack.region)}")],
            actions=LOGS_KEY_ACTIONS,
            resources=["*"],
            conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": groups}},
        ),
    )


def _domain_suffix(region: str) -> str:
    return RegionInfo.get(region).domain_suffix or "amazonaws.com"


def log_group(scope: Construct, construct_id: str, *, name: str | None = None) -> logs.LogGroup:
    """A log group of this project: a month's retention, the stack's key, deleted with its stack.

    Adding the key to a group that exists updates it in place: only LogGroupName is a create-only property in the
    resource schema (cfn-lint's copy of AWS::Logs::LogGroup), and CloudWatch Logs then encrypts what it ingests from
    then on ("Only the log events ingested after the key is associated are encrypted with that key", AssociateKmsKey
    in botocore's logs model); the events stored before stay as they were, readable.
    """
    key = telemetry_key(scope)
    _let_cloudwatch_logs_use(key)
    return logs.LogGroup(
        scope,
        construct_id,
        log_group_name=name,
        retention=RETENTION,
        encryption_key=key,
        removal_policy=cdk.RemovalPolicy.DESTROY,
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
