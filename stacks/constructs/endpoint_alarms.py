"""An endpoint's metrics and the alarms on them: errors, latency, GPU memory, and an endpoint nobody uses."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks.constructs.endpoint_role import ENDPOINT_METRICS_NAMESPACE
from stacks.constructs.serving_container import GPU_MEMORY_UTILIZATION

# Invocation metrics (count, errors, latency) come from SageMaker itself.
INVOCATION_NAMESPACE = "AWS/SageMaker"
PERIOD = cdk.Duration.minutes(5)
# A 200-token answer takes seconds; an average above this for three periods in a row means requests are queueing.
MODEL_LATENCY_SECONDS = 30
# The SageMaker developer guide's metrics page, "Endpoint Invocation Metrics" (docs.aws.amazon.com/sagemaker/latest/
# dg/monitoring-cloudwatch.html, read in its source awsdocs/amazon-sagemaker-developer-guide
# doc_source/monitoring-cloudwatch.md) gives ModelLatency "Units: Microseconds Valid statistics: Average, Sum, Min,
# Max, Sample Count". The same table gives ModelSetupTime "Valid statistics: Average, Min, Max, Sample Count,
# Percentiles": where SageMaker publishes percentiles the page says so, and for ModelLatency it does not. An alarm on
# a statistic without datapoints would sit at "not breaching" for good, so the alarm uses the documented average.
MODEL_LATENCY_STATISTIC = "Average"
LATENCY_EVALUATION_PERIODS = 3
# vLLM reserves GPU_MEMORY_UTILIZATION of each GPU up front, so the metric sits near that value by design; the
# alarm is for memory used beyond the reservation (a leak, or another process), i.e. close to out-of-memory.
GPU_MEMORY_MARGIN_PERCENT = 5
GPU_MEMORY_EVALUATION_PERIODS = 3


def endpoint_metric(
    endpoint_name: str,
    variant_name: str,
    metric_name: str,
    *,
    statistic: str,
    period: cdk.Duration = PERIOD,
    namespace: str = INVOCATION_NAMESPACE,
    label: str | None = None,
) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=namespace,
        metric_name=metric_name,
        dimensions_map={"EndpointName": endpoint_name, "VariantName": variant_name},
        statistic=statistic,
        period=period,
        label=label,
    )


def gpu_memory_threshold_percent(gpus: int) -> float:
    """SageMaker reports GPU memory utilisation summed over the instance's GPUs (0-100 % times the GPU count)."""
    return (GPU_MEMORY_UTILIZATION * 100 + GPU_MEMORY_MARGIN_PERCENT) * gpus


class EndpointAlarms(Construct):
    """Four alarms for one endpoint variant, all notifying `topic`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        label: str,
        endpoint_name: str,
        variant_name: str,
        gpus: int,
        idle_hours: int,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)

        def metric(
            name: str, statistic: str, *, period: cdk.Duration = PERIOD, namespace: str = INVOCATION_NAMESPACE
        ) -> cloudwatch.Metric:
            return endpoint_metric(
                endpoint_name, variant_name, name, statistic=statistic, period=period, namespace=namespace
            )

        def new_alarm(
            alarm_id: str,
            metric: cloudwatch.Metric,
            threshold: float,
            periods: int,
            comparison: cloudwatch.ComparisonOperator,
            description: str,
            missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
        ) -> cloudwatch.Alarm:
            """Breaches when every one of `periods` periods in a row is beyond the threshold."""
            return cloudwatch.Alarm(
                self,
                alarm_id,
                metric=metric,
                threshold=threshold,
                evaluation_periods=periods,
                datapoints_to_alarm=periods,
                comparison_operator=comparison,
                treat_missing_data=missing,
                alarm_description=description,
            )

        above = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
        # No invocations, no datapoints: silence is not an error (NOT_BREACHING, the default here).
        self.server_errors = new_alarm(
            "ServerErrors",
            metric("Invocation5XXErrors", "Sum"),
            1,
            1,
            cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            f"The {label} endpoint returned 5XX errors: see /aws/sagemaker/Endpoints/ in the logs.",
        )
        self.latency = new_alarm(
            "ModelLatency",
            metric("ModelLatency", MODEL_LATENCY_STATISTIC),  # in microseconds
            MODEL_LATENCY_SECONDS * 1_000_000,
            LATENCY_EVALUATION_PERIODS,
            above,
            f"The {label} endpoint's average model latency stayed above {MODEL_LATENCY_SECONDS} s: requests are "
            "queueing; raise endpoint_max_capacity or lower endpoint_target_invocations.",
        )
        self.gpu_memory = new_alarm(
            "GpuMemory",
            metric("GPUMemoryUtilization", "Maximum", namespace=ENDPOINT_METRICS_NAMESPACE),
            gpu_memory_threshold_percent(gpus),
            GPU_MEMORY_EVALUATION_PERIODS,
            above,
            f"The {label} endpoint uses more GPU memory than vLLM reserves ({GPU_MEMORY_UTILIZATION:.0%} per GPU, "
            f"{gpus} GPUs): it is close to running out.",
        )
        # SageMaker publishes no Invocations datapoint for a period without invocations: missing data is the idle
        # signal itself, so it breaches. Hourly sums keep the whole window within CloudWatch's one-day limit.
        self.idle = new_alarm(
            "Idle",
            metric("Invocations", "Sum", period=cdk.Duration.hours(1)),
            1,
            idle_hours,
            cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            f"The {label} endpoint has had no invocations for {idle_hours} h but bills for every hour it exists: "
            "turn it off in the configuration and run cdk deploy.",
            missing=cloudwatch.TreatMissingData.BREACHING,
        )
        action = cloudwatch_actions.SnsAction(topic)
        for alarm in self.all():
            alarm.add_alarm_action(action)

    def all(self) -> list[cloudwatch.Alarm]:
        return [self.server_errors, self.latency, self.gpu_memory, self.idle]
