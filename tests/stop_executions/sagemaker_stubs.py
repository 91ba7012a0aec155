"""Valid SageMaker responses for botocore's Stubber (it checks them against the service model)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

REGION = "us-east-1"
ACCOUNT = "123456789012"
CREATED = datetime(2026, 1, 26, 10, 15, tzinfo=UTC)


def training_job_arn(name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name}"


def tuning_job_arn(name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:hyper-parameter-tuning-job/{name}"


def training_summaries(*names: str, status: str = "InProgress") -> dict[str, Any]:
    return {
        "TrainingJobSummaries": [
            {
                "TrainingJobName": n,
                "TrainingJobArn": training_job_arn(n),
                "CreationTime": CREATED,
                "TrainingJobStatus": status,
            }
            for n in names
        ]
    }


def tuning_summaries(*names: str, status: str = "InProgress") -> dict[str, Any]:
    counters = {"Completed": 0, "InProgress": 1, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}
    return {
        "HyperParameterTuningJobSummaries": [
            {
                "HyperParameterTuningJobName": n,
                "HyperParameterTuningJobArn": tuning_job_arn(n),
                "HyperParameterTuningJobStatus": status,
                "Strategy": "Bayesian",
                "CreationTime": CREATED,
                "TrainingJobStatusCounters": counters,
                "ObjectiveStatusCounters": {"Succeeded": 0, "Pending": 1, "Failed": 0},
            }
            for n in names
        ]
    }


def training_job(
    name: str,
    status: str = "InProgress",
    secondary: str = "Training",
    metrics: dict[str, float] | None = None,
    failure: str | None = None,
) -> dict[str, Any]:
    described: dict[str, Any] = {
        "TrainingJobName": name,
        "TrainingJobArn": training_job_arn(name),
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://bucket/models/{name}/output/model/"},
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        "StoppingCondition": {"MaxRuntimeInSeconds": 36000},
        "CreationTime": CREATED,
        "FinalMetricDataList": [
            {"MetricName": k, "Value": v, "Timestamp": CREATED} for k, v in (metrics or {}).items()
        ],
    }
    if failure:
        described["FailureReason"] = failure
    return described


def tuning_job(
    name: str, status: str = "InProgress", best: str | None = None, best_loss: float = 0.0
) -> dict[str, Any]:
    described: dict[str, Any] = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobArn": tuning_job_arn(name),
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 1},
        },
        "HyperParameterTuningJobStatus": status,
        "CreationTime": CREATED,
        "TrainingJobStatusCounters": {
            "Completed": 1,
            "InProgress": 1,
            "RetryableError": 0,
            "NonRetryableError": 0,
            "Stopped": 0,
        },
        "ObjectiveStatusCounters": {"Succeeded": 1, "Pending": 1, "Failed": 0},
    }
    if best:
        described["BestTrainingJob"] = {
            "TrainingJobName": best,
            "TrainingJobArn": training_job_arn(best),
            "CreationTime": CREATED,
            "TunedHyperParameters": {"learning_rate": "3e-05"},
            "TrainingJobStatus": "Completed",
            "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "eval:loss", "Value": best_loss},
        }
    return described
