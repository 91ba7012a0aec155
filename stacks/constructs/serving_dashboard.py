from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from stacks.constructs.endpoint import VARIANT_NAME, GptjEndpoint
from stacks.constructs.endpoint_alarms import MODEL_LATENCY_STATISTIC, endpoint_metric
from stacks.constructs.endpoint_role import ENDPOINT_METRICS_NAMESPACE

WIDTH = 6  # four graphs per endpoint row (the grid is 24 wide)
HEIGHT = 6
GRAPH_PERIOD = cdk.Duration.minutes(1)


class ServingDashboard(Construct):
    """One CloudWatch dashboard for all endpoints: alarm states, then a row of graphs per endpoint.

    Only created when an endpoint exists: a dashboard bills by the month whether anything is on it or not.
    """

    def __init__(self, scope: Construct, construct_id: str, *, endpoints: list[GptjEndpoint]) -> None:
        super().__init__(scope, construct_id)
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=cdk.Duration.hours(6))
        alarms: list[cloudwatch.IAlarm] = [alarm for endpoint in endpoints for alarm in endpoint.alarms.all()]
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Endpoint alarms", alarms=alarms, width=24, height=3)
        )
        for endpoint in endpoints:
            self.dashboard.add_widgets(*self._row(endpoint))

    @staticmethod
    def _row(endpoint: GptjEndpoint) -> list[cloudwatch.IWidget]:
        name = endpoint.endpoint_name

        def metric(metric_name: str, statistic: str, label: str, namespace: str = "AWS/SageMaker") -> cloudwatch.Metric:
            return endpoint_metric(
                name,
                VARIANT_NAME,
                metric_name,
                statistic=statistic,
                period=GRAPH_PERIOD,
                namespace=namespace,
                label=label,
            )

        title = endpoint.label
        return [
            cloudwatch.GraphWidget(
                title=f"{title}: invocations per minute",
                left=[
                    metric("Invocations", "Sum", "invocations"),
                    metric("InvocationsPerInstance", "Sum", "per instance"),
                ],
                width=WIDTH,
                height=HEIGHT,
            ),
            cloudwatch.GraphWidget(
                title=f"{title}: model latency (µs)",
                # Statistics SageMaker documents for ModelLatency (no percentiles: see endpoint_alarms.py).
                left=[
                    metric("ModelLatency", MODEL_LATENCY_STATISTIC, "average"),
                    metric("ModelLatency", "Maximum", "maximum"),
                ],
                width=WIDTH,
                height=HEIGHT,
            ),
            cloudwatch.GraphWidget(
                title=f"{title}: errors",
                left=[metric("Invocation4XXErrors", "Sum", "4XX"), metric("Invocation5XXErrors", "Sum", "5XX")],
                width=WIDTH,
                height=HEIGHT,
            ),
            cloudwatch.GraphWidget(
                title=f"{title}: GPU (% summed over GPUs)",
                left=[
                    metric("GPUUtilization", "Average", "utilisation", ENDPOINT_METRICS_NAMESPACE),
                    metric("GPUMemoryUtilization", "Maximum", "memory", ENDPOINT_METRICS_NAMESPACE),
                ],
                width=WIDTH,
                height=HEIGHT,
            ),
        ]
