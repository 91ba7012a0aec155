"""The SNS topic each stack notifies through, encrypted, and who may publish to it.

Which key is decided where the topic is created, never later: the stack's own (stacks/log_groups.py
`telemetry_key`, created or looked up there and then) unless the caller asks for SNS's AWS-managed key
`alias/aws/sns`, which costs nothing. Only the serving stack without endpoints asks for that one (no alarm, no log
group), so that it holds nothing that bills, as before. An earlier version chose in an aspect, by whether the stack's
key existed by then; but the key of the CDK's provider functions' log groups is created by another aspect
(`DeclareFunctionLogGroups`), so the choice depended on which aspect ran first.
CloudWatch alarms need the customer-managed key: they publish as the `cloudwatch.amazonaws.com` service, which needs
kms:Decrypt and kms:GenerateDataKey in the key's policy, and the AWS-managed key's policy allows neither to
CloudWatch alarms and cannot be edited (AWS re:Post knowledge center, "cloudwatch-configure-alarm-sns"). A role that
publishes (the training pipeline's state machine) needs the same two actions on a customer-managed key in its own
policy; the AWS-managed key already lets the account's principals use it through SNS.

The grants are made by an aspect on the stack, once every construct exists: the alarm service is granted only in a
stack with an alarm notifying the topic, a role only if it may publish to the topic. So an alarm, or a role given
sns:Publish on the topic's ARN in an `iam.Policy` (what `add_to_policy` and `grant_publish` write), added later
cannot silently lose its notices to a key it may not use; a managed policy, or a grant on `*`, is not looked at. An
alarm notifying a topic on the AWS-managed key fails synth, naming the topic.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct, IConstruct

from stacks.log_groups import telemetry_key
from stacks.nag import fail_synth

AWS_MANAGED_SNS_KEY = "alias/aws/sns"
# What SNS needs from a publisher to encrypt a message with the topic's key, for a service and a role alike.
PUBLISH_KEY_ACTIONS = ["kms:Decrypt", "kms:GenerateDataKey"]
ALARM_SERVICE = "cloudwatch.amazonaws.com"


class NotificationTopic(Construct):
    """An SNS topic for failures and alarms, TLS-only, encrypted at rest, with an optional e-mail subscription.

    `stack_key`: encrypt with the stack's own key (the default); False for SNS's AWS-managed key, which no alarm
    may notify.
    """

    def __init__(self, scope: Construct, construct_id: str, *, email: str, stack_key: bool = True) -> None:
        super().__init__(scope, construct_id)
        self.key = telemetry_key(self) if stack_key else None
        self.topic = sns.Topic(self, "Topic", enforce_ssl=True)
        cfn_topic = self.topic.node.default_child
        assert isinstance(cfn_topic, sns.CfnTopic)
        # Set on the L1, as before: the L2's `master_key` would also change what `grant_publish` grants.
        cfn_topic.kms_master_key_id = self.key.key_arn if self.key is not None else AWS_MANAGED_SNS_KEY
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        cdk.Aspects.of(cdk.Stack.of(self)).add(_GrantItsPublishers(self.topic, self.key))


@jsii.implements(cdk.IAspect)
class _GrantItsPublishers:
    """Grants the topic's key to the alarm service and to each role allowed sns:Publish on the topic."""

    def __init__(self, topic: sns.Topic, key: kms.Key | None) -> None:
        self.topic = topic
        self.key = key

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, cdk.Stack):
            return
        stack = node
        topic_arn = stack.resolve(self.topic.topic_arn)
        constructs = stack.node.find_all()
        alarmed = any(isinstance(c, cloudwatch.CfnAlarm) and _notifies(stack, c, topic_arn) for c in constructs)
        if self.key is None:
            if alarmed:
                fail_synth(
                    self.topic,
                    f"CloudWatch alarms notify {self.topic.node.path}, encrypted with {AWS_MANAGED_SNS_KEY}, whose "
                    "policy does not let CloudWatch alarms use it: their notices would be lost. Create the "
                    "NotificationTopic with stack_key=True.",
                )
            return
        if alarmed:
            _let_alarms_publish(self.key)
        key_arn = stack.resolve(self.key.key_arn)
        for construct in constructs:
            if isinstance(construct, iam.Policy):
                document = stack.resolve(construct.document)
                if _may_publish(document, topic_arn) and not _grants(document, key_arn):
                    construct.add_statements(
                        iam.PolicyStatement(actions=PUBLISH_KEY_ACTIONS, resources=[self.key.key_arn])
                    )


def _let_alarms_publish(key: kms.Key) -> None:
    # No aws:SourceAccount/aws:SourceArn condition, on purpose. What AWS documents for this grant has none: the SNS
    # developer guide, "Enable compatibility between event sources from AWS services and encrypted topics" (its
    # source, awsdocs/amazon-sns-developer-guide doc_source/sns-key-management.md), gives the event source's service
    # principal "kms:GenerateDataKey*" and "kms:Decrypt" on "Resource": "*" without a Condition, and so does the
    # knowledge-center statement for alarms ("Allow_CloudWatch_for_CMK"). AWS documents aws:SourceArn for CloudWatch
    # alarms on the topic policy's sns:Publish (knowledge center "cloudwatch-receive-sns-for-alarm-trigger"), not on
    # the key policy, where the request comes through SNS; were the keys missing from that request, an ArnLike
    # condition would deny every alarm's notice without an error anyone sees. The principal is the alarm service
    # alone, and only a topic of this stack uses the key (docs/decisions.md S12).
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchAlarms",
            principals=[iam.ServicePrincipal(ALARM_SERVICE)],
            actions=PUBLISH_KEY_ACTIONS,
            resources=["*"],
        ),
    )


def _notifies(stack: cdk.Stack, alarm: cloudwatch.CfnAlarm, topic_arn: Any) -> bool:
    actions = [alarm.alarm_actions, alarm.ok_actions, alarm.insufficient_data_actions]
    return any(topic_arn in (stack.resolve(listed) or []) for listed in actions)


def _statements(document: Any) -> list[dict[str, Any]]:
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    return [s for s in statements if isinstance(s, dict) and s.get("Effect") == "Allow"]


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _may_publish(document: Any, topic_arn: Any) -> bool:
    return any(
        "sns:Publish" in _listed(s.get("Action")) and topic_arn in _listed(s.get("Resource"))
        for s in _statements(document)
    )


def _grants(document: Any, key_arn: Any) -> bool:
    return any(
        set(PUBLISH_KEY_ACTIONS) <= set(_listed(s.get("Action"))) and key_arn in _listed(s.get("Resource"))
        for s in _statements(document)
    )
