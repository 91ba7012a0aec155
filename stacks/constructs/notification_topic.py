"""The SNS topic each stack notifies through, encrypted, and who may publish to it.

Which key: the stack's own (stacks/log_groups.py `telemetry_key`) where an alarm notifies the topic, and wherever
the stack has that key anyway for its log groups; else SNS's AWS-managed key `alias/aws/sns`, which costs nothing.
That leaves the serving stack without endpoints (no alarm, no log group) with nothing that bills, as before.
CloudWatch alarms need the customer-managed key: they publish as the `cloudwatch.amazonaws.com` service, which needs
kms:Decrypt and kms:GenerateDataKey in the key's policy, and the AWS-managed key's policy allows neither to
CloudWatch alarms and cannot be edited (AWS re:Post knowledge center, "cloudwatch-configure-alarm-sns"). A role that
publishes (the training pipeline's state machine) needs the same two actions on a customer-managed key in its own
policy; the AWS-managed key already lets the account's principals use it through SNS.

The choice and the grants are made by an aspect on the stack, once every construct exists: the alarm service is
granted only in a stack with an alarm notifying the topic, a role only if it may publish to the topic. So an alarm
or a publisher added later cannot silently lose its notices to a key it may not use.
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

from stacks.log_groups import TELEMETRY_KEY_ID, telemetry_key

AWS_MANAGED_SNS_KEY = "alias/aws/sns"
# What SNS needs from a publisher to encrypt a message with the topic's key, for a service and a role alike.
PUBLISH_KEY_ACTIONS = ["kms:Decrypt", "kms:GenerateDataKey"]
ALARM_SERVICE = "cloudwatch.amazonaws.com"
_ALARM_GRANT_ID = "CloudWatchAlarmsGrant"


class NotificationTopic(Construct):
    """An SNS topic for failures and alarms, TLS-only, encrypted at rest, with an optional e-mail subscription."""

    def __init__(self, scope: Construct, construct_id: str, *, email: str) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Topic", enforce_ssl=True)
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        cdk.Aspects.of(cdk.Stack.of(self)).add(_EncryptForItsPublishers(self.topic))


@jsii.implements(cdk.IAspect)
class _EncryptForItsPublishers:
    """Sets the topic's key and grants it to the alarm service and to each role allowed sns:Publish on the topic."""

    def __init__(self, topic: sns.Topic) -> None:
        self.topic = topic

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, cdk.Stack):
            return
        stack = node
        topic_arn = stack.resolve(self.topic.topic_arn)
        constructs = stack.node.find_all()
        alarmed = any(isinstance(c, cloudwatch.CfnAlarm) and _notifies(stack, c, topic_arn) for c in constructs)
        cfn_topic = self.topic.node.default_child
        assert isinstance(cfn_topic, sns.CfnTopic)
        if not alarmed and stack.node.try_find_child(TELEMETRY_KEY_ID) is None:
            cfn_topic.kms_master_key_id = AWS_MANAGED_SNS_KEY
            return
        key = telemetry_key(stack)
        cfn_topic.kms_master_key_id = key.key_arn
        if alarmed:
            _let_alarms_publish(key)
        for construct in constructs:
            if isinstance(construct, iam.Policy):
                document = stack.resolve(construct.document)
                if _may_publish(document, topic_arn) and not _grants(document, stack.resolve(key.key_arn)):
                    construct.add_statements(iam.PolicyStatement(actions=PUBLISH_KEY_ACTIONS, resources=[key.key_arn]))


def _let_alarms_publish(key: kms.Key) -> None:
    if key.node.try_find_child(_ALARM_GRANT_ID) is not None:
        return
    Construct(key, _ALARM_GRANT_ID)  # marks the grant as made: one statement per key
    # No aws:SourceAccount/SourceArn condition: AWS's own statement for alarms on encrypted topics (the knowledge
    # center article above) has none, and a caller-account condition is reported to stop the alarm's delivery;
    # the principal is the alarm service alone.
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchAlarms",
            principals=[iam.ServicePrincipal(ALARM_SERVICE)],
            actions=PUBLISH_KEY_ACTIONS,
            resources=["*"],
        )
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
