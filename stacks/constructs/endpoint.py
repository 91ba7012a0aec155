"""One GPT-J endpoint: role, model, endpoint configuration, endpoint, autoscaling and alarms.

Used twice by the serving stack: the base model from the Hugging Face Hub, and a fine-tuned model from S3.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from constructs import Construct

from config import Settings
from config.instance_types import InstanceFacts
from stacks.constructs.bucket_access import grant_prefix
from stacks.constructs.dataset_bucket import DatasetBucket, model_key_prefix
from stacks.constructs.endpoint_alarms import EndpointAlarms
from stacks.constructs.endpoint_role import ENDPOINT_LOG_GROUP_PREFIX, EndpointRole
from stacks.constructs.endpoint_scaling import EndpointAutoscaling
from stacks.constructs.serving_container import ContainerSettings
from stacks.images import ContainerImage
from stacks.log_groups import log_group
from stacks.nag import acknowledge_scanner
from stacks.serving_image import INFERENCE_AMI_VERSION

VARIANT_NAME = "AllTraffic"
# Where SageMaker puts ModelDataSource files inside the container, and where LMI looks for a local model.
CONTAINER_MODEL_DIR = "/opt/ml/model"
# Large-model timeouts: the fine-tuned endpoint's ~12 GB are staged from S3 before the container starts; the base
# endpoint downloads as much from the Hub during start-up, within the container's own model loading timeout
# (ContainerSettings.model_loading_seconds).
MODEL_DOWNLOAD_SECONDS = 1800
# The first health check waits for the loading timeout plus this margin, so that a model that does not load is
# stopped by the container first: LMI then logs why (timeout, out of memory, a download error) and fails, and the
# endpoint fails with that in its log group. With equal limits SageMaker's check can expire first (its clock also
# counts the container's own start-up before loading begins) and report only that the container did not pass its
# health check. Five minutes covers the start-up (JVM and Python workers) with room to spare.
HEALTH_CHECK_MARGIN_SECONDS = 300
# SageMaker's limit for both timeouts (botocore's SageMaker model: the shapes of ProductionVariant's
# ContainerStartupHealthCheckTimeoutInSeconds and ModelDataDownloadTimeoutInSeconds have "min": 60, "max": 3600).
MAX_VARIANT_TIMEOUT_SECONDS = 3600


def startup_health_check_seconds(model_loading_seconds: int) -> int:
    """How long SageMaker waits for the first health check: the container's loading limit plus the margin."""
    seconds = model_loading_seconds + HEALTH_CHECK_MARGIN_SECONDS
    if seconds > MAX_VARIANT_TIMEOUT_SECONDS:
        raise ValueError(
            f"model loading timeout {model_loading_seconds} s plus the {HEALTH_CHECK_MARGIN_SECONDS} s margin exceeds "
            f"SageMaker's {MAX_VARIANT_TIMEOUT_SECONDS} s limit for the startup health check"
        )
    return seconds


@dataclass(frozen=True)
class HubWeights:
    """The model as published on the Hugging Face Hub: the container downloads it, so it needs the internet."""

    model_id: str
    revision: str

    def environment(self) -> dict[str, str]:
        return {"HF_MODEL_ID": self.model_id, "OPTION_REVISION": self.revision}


@dataclass(frozen=True)
class TrainedWeights:
    """The model a training job saved (Hugging Face format, uncompressed) under the dataset bucket's models/."""

    store: DatasetBucket
    training_job: str

    @property
    def prefix(self) -> str:
        return model_key_prefix(self.training_job)

    @property
    def s3_uri(self) -> str:
        return f"s3://{self.store.bucket.bucket_name}/{self.prefix}"

    def environment(self) -> dict[str, str]:
        # SageMaker copies the prefix to /opt/ml/model before the container starts; nothing is fetched at run time
        # (network isolation would make any Hub lookup hang until it times out).
        return {"HF_MODEL_ID": CONTAINER_MODEL_DIR, "HF_HUB_OFFLINE": "1"}


Weights = HubWeights | TrainedWeights


class GptjEndpoint(Construct):
    """A real-time endpoint serving GPT-J-6B with the LMI (vLLM) container on one instance type."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        label: str,
        weights: Weights,
        image: ContainerImage,
        instance_type: str,
        instance: InstanceFacts,
        container: ContainerSettings,
        volume_key: kms.IKey,
        settings: Settings,
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.label = label
        # Named after the stack, so that its log group can be declared before SageMaker would create it outside
        # CloudFormation (with no retention, left behind by `cdk destroy`), and the role scoped to that one group.
        # Only EndpointName forces a replacement, and it never changes: the endpoint is updated in place.
        self.name = f"{cdk.Stack.of(self).stack_name}-{label}"
        self.log_group = log_group(self, "Logs", name=f"{ENDPOINT_LOG_GROUP_PREFIX}{self.name}")
        self.execution_role = EndpointRole(
            self, "Execution", image=image, log_group=self.log_group, description=f"Runs the {label} GPT-J endpoint"
        ).role
        if isinstance(weights, TrainedWeights):
            grant_prefix(self.execution_role, weights.store, weights.prefix)
            model_data_source = sagemaker.CfnModel.ModelDataSourceProperty(
                s3_data_source=sagemaker.CfnModel.S3DataSourceProperty(
                    s3_uri=weights.s3_uri, s3_data_type="S3Prefix", compression_type="None"
                )
            )
        else:
            model_data_source = None
        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.execution_role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image.uri,
                mode="SingleModel",
                model_data_source=model_data_source,
                environment={**container.environment(), **weights.environment()},
            ),
            # With the weights in S3 the container needs no network at all; the Hub model is downloaded by the
            # container itself, so that endpoint cannot be isolated (its traffic is HTTPS to the Hub only).
            enable_network_isolation=model_data_source is not None,
        )
        if model_data_source is None:
            acknowledge_scanner(
                self.model,
                "CKV_AWS_370",
                "The base model is downloaded by the container from the Hugging Face Hub at start-up (HTTPS), so the "
                "container needs the network. Isolating it would mean staging the pinned revision's 12 GB into the "
                "bucket first, a job longer and larger than a Lambda function can run; the fine-tuned model, which is "
                "this project's data, is served isolated.",
            )
        # The role's policy must be attached before SageMaker uses the role (image pull, model download), not just
        # the role created: depend on the whole role construct, its default policy included.
        self.model.node.add_dependency(self.execution_role)
        self.config = sagemaker.CfnEndpointConfig(
            self,
            "Config",
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=VARIANT_NAME,
                    model_name=self.model.attr_model_name,
                    instance_type=instance_type,
                    initial_instance_count=settings.endpoint_min_capacity,
                    initial_variant_weight=1,
                    container_startup_health_check_timeout_in_seconds=startup_health_check_seconds(
                        container.model_loading_seconds
                    ),
                    model_data_download_timeout_in_seconds=MODEL_DOWNLOAD_SECONDS,
                    # The default host image of g4dn and g5 has driver 470 (CUDA 11.4): too old for the image. Every
                    # type that gets this far has GPUs (container_settings refuses the others).
                    inference_ami_version=INFERENCE_AMI_VERSION,
                    # Generations take seconds: send each request to the instance with the fewest in flight.
                    routing_config=sagemaker.CfnEndpointConfig.RoutingConfigProperty(
                        routing_strategy="LEAST_OUTSTANDING_REQUESTS"
                    ),
                )
            ],
            # SageMaker rejects a volume key on instance types with local NVMe instance storage (g4dn, g5, g6, p4d,
            # p5): their model and scratch space live on the instance store, which the hardware encrypts. The key
            # is set wherever SageMaker accepts it, i.e. on EBS-only types.
            kms_key_id=None if instance.local_nvme else volume_key.key_arn,
        )
        self.endpoint = sagemaker.CfnEndpoint(
            self, "Endpoint", endpoint_name=self.name, endpoint_config_name=self.config.attr_endpoint_config_name
        )
        self.endpoint.node.add_dependency(self.log_group)
        self.endpoint_name = self.endpoint.attr_endpoint_name
        self.scaling = EndpointAutoscaling(
            self, "Scaling", endpoint_name=self.endpoint_name, variant_name=VARIANT_NAME, settings=settings
        )
        self.alarms = EndpointAlarms(
            self,
            "Alarms",
            label=label,
            endpoint_name=self.endpoint_name,
            variant_name=VARIANT_NAME,
            gpus=instance.gpus,
            idle_hours=settings.idle_alarm_hours,
            topic=alarm_topic,
        )
