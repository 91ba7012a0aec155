from __future__ import annotations

from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from stacks.nag import acknowledge


class NotificationTopic(Construct):
    """An SNS topic for failures and alarms, TLS-only, with an optional e-mail subscription."""

    def __init__(self, scope: Construct, construct_id: str, *, email: str) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Topic", enforce_ssl=True)
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        acknowledge(
            self.topic,
            "AwsSolutions-SNS2",
            "Messages are alarm and failure notices with no confidential content, and CloudWatch alarms cannot "
            "publish to a topic encrypted with the AWS-managed SNS key.",
        )
