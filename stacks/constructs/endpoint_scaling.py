from __future__ import annotations

from aws_cdk import aws_applicationautoscaling as appscaling
from constructs import Construct

from config import Settings

SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"


class EndpointAutoscaling(Construct):
    """Target tracking on invocations per instance for one endpoint variant.

    L1 resources on purpose: the L2 `ScalableTarget` always creates its own IAM role (with no permissions), while
    for SageMaker Application Auto Scaling must act through its service-linked role
    AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint, which it uses (creating it if needed) when
    `RoleARN` is left out.

    Why `SageMakerVariantInvocationsPerInstance` rather than the high-resolution concurrency metric: the setting
    is defined in invocations per instance per minute (what the operator reads off the dashboard), and a new
    GPT-J instance takes minutes to start (image pull, 12 GB of weights, CUDA graphs), so a 10-second concurrency
    signal would not make capacity arrive sooner; the cooldowns keep it from flapping.

    Why no scale to zero: a variant's minimum is 1 (zero needs inference components with managed instance
    scaling), and the first request after zero would wait for that cold start; the idle alarm and turning the
    endpoint off in configuration cover the "nobody uses it" case instead (docs/serving.md).
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, endpoint_name: str, variant_name: str, settings: Settings
    ) -> None:
        super().__init__(scope, construct_id)
        self.target = appscaling.CfnScalableTarget(
            self,
            "Target",
            service_namespace="sagemaker",
            resource_id=f"endpoint/{endpoint_name}/variant/{variant_name}",
            scalable_dimension=SCALABLE_DIMENSION,
            min_capacity=settings.endpoint_min_capacity,
            max_capacity=settings.endpoint_max_capacity,
        )
        self.policy = appscaling.CfnScalingPolicy(
            self,
            "InvocationsPerInstance",
            policy_name="invocations-per-instance",
            policy_type="TargetTrackingScaling",
            scaling_target_id=self.target.ref,
            target_tracking_scaling_policy_configuration=appscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
                predefined_metric_specification=appscaling.CfnScalingPolicy.PredefinedMetricSpecificationProperty(
                    predefined_metric_type="SageMakerVariantInvocationsPerInstance"
                ),
                target_value=settings.endpoint_target_invocations,
                scale_in_cooldown=settings.endpoint_scale_in_cooldown_seconds,
                scale_out_cooldown=settings.endpoint_scale_out_cooldown_seconds,
            ),
        )
