from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from config import HOSTING_INSTANCE_TYPES, Settings
from stacks.constructs.dataset_bucket import DatasetBucket
from stacks.constructs.endpoint import GptjEndpoint, HubWeights, TrainedWeights, Weights
from stacks.constructs.notification_topic import NotificationTopic
from stacks.constructs.serving_container import container_settings
from stacks.constructs.serving_dashboard import ServingDashboard
from stacks.serving_image import lmi_image

# The base model and the branch holding its fp16 weights (12 GB instead of 24 GB of fp32 on `main`), as the
# model card and the transformers GPT-J docs load it. A branch, not a commit: pin a commit hash here once one
# has been read from the Hub (`huggingface_hub.model_info("EleutherAI/gpt-j-6b", revision="float16").sha`).
BASE_MODEL_ID = "EleutherAI/gpt-j-6b"
BASE_MODEL_REVISION = "float16"

# CloudFormation output keys: `make invoke` finds the endpoints by these (ops/invoke.py).
BASE_OUTPUT = "BaseEndpointName"
FINE_TUNED_OUTPUT = "FineTunedEndpointName"


class ServingStack(cdk.Stack):
    """The endpoints, switched by configuration: the base GPT-J-6B, a fine-tuned one, both, or none.

    The stack always exists, with at least its (free) alarm topic, so that switching an endpoint off and running
    `cdk deploy` removes the endpoint and everything that bills with it, and `cdk destroy` removes the rest
    (DESIGN.md D3). With neither switch set there is no model, endpoint configuration, endpoint or dashboard.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: Settings, store: DatasetBucket, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        # The stack's own key only with an endpoint (its alarms need it; $1 a month): without one, SNS's free key.
        self.notifications = NotificationTopic(
            self, "Alarms", email=settings.notification_email, stack_key=settings.endpoints_requested
        )
        cdk.CfnOutput(self, "AlarmTopicArn", value=self.notifications.topic.topic_arn)
        self.endpoints: list[GptjEndpoint] = []
        if not settings.endpoints_requested:
            return
        # Checked only when an endpoint is requested: an unsuitable type is a setting error, before anything bills.
        container = container_settings(settings.endpoint_instance_type)
        image = lmi_image(settings.region)

        def endpoint(construct_id: str, label: str, weights: Weights) -> GptjEndpoint:
            return GptjEndpoint(
                self,
                construct_id,
                label=label,
                weights=weights,
                image=image,
                instance_type=settings.endpoint_instance_type,
                instance=HOSTING_INSTANCE_TYPES[settings.endpoint_instance_type],
                container=container,
                volume_key=store.key,
                settings=settings,
                alarm_topic=self.notifications.topic,
            )

        if settings.deploy_base_endpoint:
            self.base = endpoint("Base", "base", HubWeights(BASE_MODEL_ID, BASE_MODEL_REVISION))
            self.endpoints.append(self.base)
            cdk.CfnOutput(self, BASE_OUTPUT, value=self.base.endpoint_name)
        if settings.fine_tuned_job:
            weights = TrainedWeights(store, settings.fine_tuned_job)
            self.fine_tuned = endpoint("FineTuned", "fine-tuned", weights)
            self.endpoints.append(self.fine_tuned)
            cdk.CfnOutput(self, FINE_TUNED_OUTPUT, value=self.fine_tuned.endpoint_name)
            cdk.CfnOutput(self, "FineTunedModelData", value=weights.s3_uri)
        self.dashboard = ServingDashboard(self, "Monitoring", endpoints=self.endpoints)
        cdk.CfnOutput(self, "DashboardName", value=self.dashboard.dashboard.dashboard_name)
