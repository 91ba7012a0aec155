from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from config import Settings
from stacks.constructs.dataset_bucket import DatasetBucket
from stacks.constructs.dataset_prep import DatasetPrep
from stacks.constructs.notification_topic import NotificationTopic


class DatasetStack(cdk.Stack):
    """Stateful: the dataset bucket (datasets, checkpoints, models) and the prep that fills it."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.store = DatasetBucket(self, "Store", retain=settings.retain_data)
        self.notifications = NotificationTopic(self, "Notifications", email=settings.notification_email)
        self.prep = DatasetPrep(self, "Prep", store=self.store, settings=settings, alarm_topic=self.notifications.topic)
        cdk.CfnOutput(self, "BucketName", value=self.store.bucket.bucket_name)
        cdk.CfnOutput(self, "PrepFunctionName", value=self.prep.function.function_name)
