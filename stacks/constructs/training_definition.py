"""The training pipeline's state machine definition (Amazon States Language with JSONata), built as plain data.

No constructs here: `definition(spec)` returns the ASL document, `training_job_request(spec)` and
`tuning_job_request(spec)` the SageMaker requests inside it, so that tests can read them without a synth.
The values in `PipelineSpec` may be CDK tokens; the construct serializes the document with `Stack.to_json_string`.

Why hand-written ASL instead of the CDK's task constructs: the L2 `SageMakerCreateTrainingJob` has no spot or
checkpoint fields and grants `Resource: *`, and there is no L2 for tuning jobs. Why JSONata: defaults for the
execution input, its validation, the job name derived from the execution name and the retry delay are
expressions; in JSONPath they would take several extra states.

States (docs/training-pipeline.md has the diagram):
  ReadInput -> ValidateInput -> PrepareDataset -> TrainModel | TuneModel -> [FindBestTrainingJob] -> ModelReady
  failures of TrainModel/TuneModel -> ShouldRetry -> WaitBeforeRetry -> (again) | NotifyFailure -> TrainingFailed
  a job an earlier try of the create call made -> DescribeExistingJob -> ExistingJobStatus -> WaitForExistingJob
    -> (again) | ModelReady, FindBestTrainingJob or ShouldRetry as the job state would | NotifyFailure
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import Settings
from config.settings import EPOCHS_RANGE, METHODS, UK_ABS_TRAIN_DOCUMENTS
from lambdas.stop_executions.handler import (
    DISALLOWED_CHARACTERS,
    EXECUTION_NAME_CHARS,
    HASHED_NAME_CHARS,
    JOB_NAME_PREFIX,
    NAME_HASH_ALGORITHM,
    NAME_HASH_CHARS,
    RETRY_LIKE_ENDING,
    RETRY_SUFFIX,
)
from stacks.constructs.dataset_bucket import CHECKPOINT_PREFIX, MODEL_KEY_SUFFIX, MODELS_PREFIX

TRAINING_ROOT = Path(__file__).resolve().parents[2] / "training"
ENTRY_POINT = "train.py"
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
OBJECTIVE_METRIC = "eval:loss"
PROJECT_TAG = {"Key": "project", "Value": "legal-gptj"}

# Execution input: what a run may change without a deploy. Everything else (instance type, learning rate, spot,
# tuning) stays in the deployed configuration, the reviewable record of what the pipeline runs.
OVERRIDABLE_INPUT = ("doc_count", "epochs", "method")
IGNORED_INPUT = ("Comment",)  # the console's default input is {"Comment": "..."}

# Capacity retries: a new attempt (a new job name, since SageMaker never reuses one) after a wait that doubles.
MAX_ATTEMPTS = 4
FIRST_RETRY_DELAY_S = 600
MAX_RETRY_DELAY_S = 3600
# How Step Functions' optimized SageMaker integration reports errors (DESIGN.md §6): an error that botocore models for
# the operation as `SageMaker.<shape>Exception` (CreateTrainingJob and CreateHyperParameterTuningJob model
# ResourceInUse, ResourceLimitExceeded and ResourceNotFound), every other API error, throttling and 5xx included, as
# `SageMaker.AmazonSageMakerException`, and a job that ended Failed as `States.TaskFailed` with the job's description
# (JSON) as the cause.
# An account limit: another attempt later (an account quota of 0 instances answers this too; see decisions.md T5).
RETRYABLE_ERRORS = ("SageMaker.ResourceLimitExceededException",)
# A failed job is retried only when its FailureReason starts with the capacity error SageMaker reports
# (`CapacityError: Unable to provision requested ML compute capacity...`). The rest of the description does not
# count: its SecondaryStatusTransitions may speak of insufficient capacity on the way to an algorithm error.
CAPACITY_FAILURE_REASON = "/^(CapacityError|InsufficientCapacity)/"
# API errors retried in place (the job was not created, so the same name is free). The name does not tell
# throttling from a rejected request (ValidationException): a rejected one is also tried 3 more times (at most
# 30 + 60 + 120 s) before it is reported.
TRANSIENT_API_ERRORS = ("SageMaker.AmazonSageMakerException",)
# A create call whose earlier try made the job after all (a transient error answered after the job was created,
# then the in-place retry sends the same name): not retryable, and the job runs. The existing-job states wait for it
# (decisions.md T5), describing it every 5 minutes for as long as it may run and an hour more.
DUPLICATE_JOB_ERROR = "SageMaker.ResourceInUseException"
EXISTING_JOB_POLL_S = 300
EXISTING_JOB_MARGIN_S = 3600
EXISTING_JOB_ERROR = "JobStillRunning"
# What the execution fails with after the notification; the original error and cause are in its cause.
FAILURE_ERROR = "PipelineFailed"
CAUSE_CHARS = 32768  # Step Functions' cause fields
MAX_CAUSE_CHARS = 30000  # a margin below them for the execution's cause, which adds a summary
SNS_SUBJECT_CHARS = 99  # SNS: subjects must be fewer than 100 characters (DESIGN.md §6)
LAMBDA_TRANSIENT_ERRORS = (
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
PREP_TIMEOUT_S = 960  # the prep Lambda's 15 minutes, and a minute to spare


def _load_metrics_module() -> Any:
    spec = importlib.util.spec_from_file_location("legal_gptj_training_metrics", TRAINING_ROOT / "metrics.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Defined once in training/metrics.py (stdlib only), next to the code that prints the lines they parse.
METRIC_DEFINITIONS: list[dict[str, str]] = [dict(d) for d in _load_metrics_module().METRIC_DEFINITIONS]


@dataclass(frozen=True)
class PipelineSpec:
    """What the definition needs; the strings may be CDK tokens."""

    settings: Settings
    partition: str
    bucket_name: str
    key_arn: str
    job_role_arn: str
    prep_function_arn: str
    topic_arn: str
    source_s3_uri: str
    image_uri: str

    @property
    def models_s3_uri(self) -> str:
        return f"s3://{self.bucket_name}/{MODELS_PREFIX}"

    @property
    def checkpoints_s3_uri(self) -> str:
        return f"s3://{self.bucket_name}/{CHECKPOINT_PREFIX}"

    @property
    def training_state(self) -> str:
        return "TuneModel" if self.settings.tuning_enabled else "TrainModel"


def _expr(expression: str) -> str:
    return "{% " + expression + " %}"


def _js(value: str) -> str:
    """A JSONata string literal (single-quoted, so that it sits inside the JSON string unescaped)."""
    assert "'" not in value and "\\" not in value, value
    return f"'{value}'"


def _js_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(_js(v) for v in values) + "]"


# The job name of the first attempt; the same rule as lambdas/stop_executions/handler.py's job_base_name: a short
# name of allowed characters whole, any other its first allowed characters and a hash of the whole name.
JOB_BASE_EXPRESSION = (
    "($name := $states.context.Execution.Name; "
    f"$kept := $replace($name, /{DISALLOWED_CHARACTERS}/, ''); "
    f"$head := $replace($substring($kept, 0, {HASHED_NAME_CHARS}), /-+$/, ''); "
    f"$digest := $substring($lowercase($hash($name, {_js(NAME_HASH_ALGORITHM)})), 0, {NAME_HASH_CHARS}); "
    f"{_js(JOB_NAME_PREFIX)} & ($replace($substring($kept, 0, {EXECUTION_NAME_CHARS}), /-+$/, '') = $name "
    f"and $not($contains($name, /{RETRY_LIKE_ENDING}/)) ? $name : ($head = '' ? '' : $head & '-') & $digest))"
)


def _input_default(key: str, default: object) -> str:
    literal = _js(default) if isinstance(default, str) else json.dumps(default)
    return _expr(f"$exists($states.input.{key}) ? $states.input.{key} : {literal}")


def _integer_between(variable: str, low: int, high: int) -> str:
    # A conditional, not `and`: $floor of a string would raise instead of failing the check.
    in_range = f"{variable} = $floor({variable}) and {variable} >= {low} and {variable} <= {high}"
    return f"($type({variable}) = 'number' ? ({in_range}) : false)"


def _format_number(value: float) -> str:
    return repr(value)


def static_hyperparameters(spec: PipelineSpec) -> dict[str, str]:
    """Hyperparameters every job gets. Their names are train.py's arguments (training/arguments.py); the
    `sagemaker_*` ones are read by the container's training toolkit and never reach the script."""
    s = spec.settings
    return {
        "method": _expr("$method"),
        "epochs": _expr("$string($epochs)"),
        "block_size": str(s.block_size),
        "per_device_train_batch_size": str(s.per_device_train_batch_size),
        "gradient_accumulation_steps": str(s.gradient_accumulation_steps),
        "checkpoint_dir": CHECKPOINT_LOCAL_PATH,
        "sagemaker_program": ENTRY_POINT,
        "sagemaker_submit_directory": spec.source_s3_uri,
        "sagemaker_region": s.region,
        # torchrun with one process per GPU on every instance (the toolkit's torch_distributed launcher).
        "sagemaker_torch_distributed_enabled": "true",
    }


def training_hyperparameters(spec: PipelineSpec) -> dict[str, str]:
    return {**static_hyperparameters(spec), "learning_rate": _format_number(spec.settings.learning_rate)}


def _channels() -> list[dict[str, Any]]:
    return [
        {
            "ChannelName": name,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": _expr(f"$dataset.{name}_s3_uri"),
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
        }
        for name in ("train", "validation")
    ]


def _job_definition(spec: PipelineSpec) -> dict[str, Any]:
    """The fields a training job and a tuning job's training job definition share."""
    s = spec.settings
    resources: dict[str, Any] = {
        "InstanceType": s.training_instance_type,
        "InstanceCount": s.training_instance_count,
        "VolumeSizeInGB": s.training_volume_gb,
    }
    if s.training_volume_key:  # DESIGN.md §4
        resources["VolumeKmsKeyId"] = spec.key_arn
    stopping: dict[str, Any] = {"MaxRuntimeInSeconds": s.max_run_seconds}
    job: dict[str, Any] = {
        "RoleArn": spec.job_role_arn,
        "InputDataConfig": _channels(),
        "OutputDataConfig": {
            # SageMaker appends <job-name>/output/model/, uncompressed: the layout the serving stack reads.
            "S3OutputPath": spec.models_s3_uri,
            "KmsKeyId": spec.key_arn,
            "CompressionType": "NONE",
        },
        "ResourceConfig": resources,
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": s.use_spot,
        # The job installs requirements.txt from PyPI and downloads the base model from the Hugging Face Hub, so it
        # needs the network (docs/decisions.md: network isolation would need a `model` channel and a wheelhouse).
        "EnableNetworkIsolation": False,
    }
    if s.use_spot:
        stopping["MaxWaitTimeInSeconds"] = s.max_wait_seconds
        # Spot interruptions resume from here; the bucket expires checkpoints after 14 days.
        job["CheckpointConfig"] = {
            "S3Uri": _expr(f"{_js(spec.checkpoints_s3_uri)} & $jobName & '/'"),
            "LocalPath": CHECKPOINT_LOCAL_PATH,
        }
    return job


def _algorithm(spec: PipelineSpec) -> dict[str, Any]:
    return {
        "TrainingImage": spec.image_uri,
        "TrainingInputMode": "File",
        "MetricDefinitions": METRIC_DEFINITIONS,
    }


def training_job_request(spec: PipelineSpec) -> dict[str, Any]:
    """CreateTrainingJob's request, for `arn:<partition>:states:::sagemaker:createTrainingJob.sync`."""
    return {
        "TrainingJobName": _expr("$jobName"),
        "AlgorithmSpecification": {**_algorithm(spec), "EnableSageMakerMetricsTimeSeries": True},
        "HyperParameters": training_hyperparameters(spec),
        **_job_definition(spec),
        "Tags": [PROJECT_TAG],
    }


def tuning_job_request(spec: PipelineSpec) -> dict[str, Any]:
    """CreateHyperParameterTuningJob's request: the learning rate on a log scale, the rest as for one job."""
    s = spec.settings
    return {
        "HyperParameterTuningJobName": _expr("$jobName"),
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": OBJECTIVE_METRIC},
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": s.tuning_max_jobs,
                "MaxParallelTrainingJobs": s.tuning_parallel_jobs,
            },
            "ParameterRanges": {
                "ContinuousParameterRanges": [
                    {
                        "Name": "learning_rate",
                        "MinValue": _format_number(s.tuning_learning_rate_min),
                        "MaxValue": _format_number(s.tuning_learning_rate_max),
                        "ScalingType": "Logarithmic",
                    }
                ],
                "IntegerParameterRanges": [],
                "CategoricalParameterRanges": [],
            },
            "TrainingJobEarlyStoppingType": "Off",
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": _algorithm(spec),
            "StaticHyperParameters": static_hyperparameters(spec),
            **_job_definition(spec),
        },
        "Tags": [PROJECT_TAG],
    }


# The FailureReason of a SageMaker job that failed, read from the error of its `.sync` task (`States.TaskFailed`, the
# job's description as the cause), else ''. Matched, not `$parse`d whole: a cause need not be whole JSON (one longer
# than 32,768 characters is cut), `$parse` of such a cause raises, and an expression that raises ends the execution
# before the notification. The member's value is matched as JSON writes a string (no raw control character, only
# JSON's escapes), so `$parse` of it cannot raise. `\x5C` is a backslash and `\x2F` a slash: JSONata finds the end of
# a regular expression by counting brackets not preceded by a backslash, and a slash would end it.
_JSON_STRING_BODY = r'(?:[^"\x5C\u0000-\u001F]|\x5C["\x5C\x2Fbfnrt]|\x5Cu[0-9a-fA-F]{4})*'
JOB_FAILURE_REASON = (
    "($error := $states.errorOutput; $found := $error.Error = 'States.TaskFailed' and $type($error.Cause) = 'string' "
    rf"""? $match($error.Cause, /"FailureReason"\s*:\s*"({_JSON_STRING_BODY})"/, 1); """
    """$exists($found) ? $parse('"' & $found.groups[0] & '"') : '')"""
)


def _catch(state: str, next_state: str, *, job: bool = False) -> list[dict[str, Any]]:
    """Every error of `state`, with what the failure path reads: the error, the state, the job's FailureReason, and
    for a job state how often its create call was tried again in place (ShouldRetry: a job an earlier try made)."""
    assign = {
        "failure": _expr("$states.errorOutput"),
        "failedState": state,
        "failureReason": _expr(JOB_FAILURE_REASON if job else "''"),
    }
    if job:
        assign["createRetries"] = _expr("$states.context.State.RetryCount")
    return [{"ErrorEquals": ["States.ALL"], "Assign": assign, "Next": next_state}]


def _result(spec: PipelineSpec, training_job: str, tuning_job: str) -> dict[str, Any]:
    """The execution's output, the same shape on both paths."""
    return {
        "training_job_name": _expr(training_job),
        "tuning_job_name": _expr(tuning_job),
        "model_s3_uri": _expr(f"{_js(spec.models_s3_uri)} & {training_job} & {_js(MODEL_KEY_SUFFIX)}"),
        "dataset_id": _expr("$dataset.dataset_id"),
        "manifest_uri": _expr("$dataset.manifest_uri"),
        "attempts": _expr("$attempt"),
    }


def _service(spec: PipelineSpec, integration: str) -> str:
    return f"arn:{spec.partition}:states:::{integration}"


def _input_states(spec: PipelineSpec) -> dict[str, Any]:
    s = spec.settings
    allowed = OVERRIDABLE_INPUT + IGNORED_INPUT
    valid = " and ".join(
        [
            "$type($states.input) = 'object'",
            # A function, not a `[$ in ...]` predicate: whether Step Functions' static check reads a predicate's `$`
            # as top level is undocumented (T2).
            f"$count($filter($keys($states.input), function($key) {{ $not($key in {_js_list(allowed)}) }})) = 0",
            _integer_between("$docCount", 1, UK_ABS_TRAIN_DOCUMENTS),
            _integer_between("$epochs", *EPOCHS_RANGE),
            f"$method in {_js_list(METHODS)}",
        ]
    )
    return {
        "ReadInput": {
            "Type": "Pass",
            "Comment": "Execution input overrides the deployed doc_count, epochs and method; the job name follows "
            "from the execution name.",
            "Assign": {
                "docCount": _input_default("doc_count", s.doc_count),
                "epochs": _input_default("epochs", s.epochs),
                "method": _input_default("method", s.method),
                "jobBase": _expr(JOB_BASE_EXPRESSION),
                "jobName": _expr(JOB_BASE_EXPRESSION),
                "attempt": 1,
            },
            "Next": "ValidateInput",
        },
        "ValidateInput": {
            "Type": "Choice",
            "Choices": [{"Condition": _expr(valid), "Next": "PrepareDataset"}],
            "Default": "InvalidInput",
        },
        "InvalidInput": {
            "Type": "Fail",
            "Error": "InvalidInput",
            "Cause": f"Execution input may set doc_count (an integer from 1 to {UK_ABS_TRAIN_DOCUMENTS}), epochs (an "
            f"integer from {EPOCHS_RANGE[0]} to {EPOCHS_RANGE[1]}) and method ({' or '.join(METHODS)}), and nothing "
            "else; the rest is deployed configuration.",
        },
        "PrepareDataset": {
            "Type": "Task",
            "Comment": "Idempotent: reuses the dataset when one with this configuration exists.",
            "Resource": _service(spec, "lambda:invoke"),
            "Arguments": {"FunctionName": spec.prep_function_arn, "Payload": {"doc_count": _expr("$docCount")}},
            "Assign": {"dataset": _expr("$states.result.Payload")},
            "TimeoutSeconds": PREP_TIMEOUT_S,
            "Retry": [
                {
                    "ErrorEquals": list(LAMBDA_TRANSIENT_ERRORS),
                    "IntervalSeconds": 5,
                    "MaxAttempts": 4,
                    "BackoffRate": 2,
                    "JitterStrategy": "FULL",
                }
            ],
            "Catch": _catch("PrepareDataset", "NotifyFailure"),
            "Next": spec.training_state,
        },
    }


def _transient_retry() -> list[dict[str, Any]]:
    return [
        {
            "ErrorEquals": list(TRANSIENT_API_ERRORS),
            "IntervalSeconds": 30,
            "MaxAttempts": 3,
            "BackoffRate": 2,
            "JitterStrategy": "FULL",
        }
    ]


def _describe_retry() -> list[dict[str, Any]]:
    # An AWS SDK integration names an unmodelled error (throttling, 5xx) after the SDK's service exception.
    return [
        {
            "ErrorEquals": ["SageMaker.SageMakerException", "States.Timeout"],
            "IntervalSeconds": 10,
            "MaxAttempts": 3,
            "BackoffRate": 2,
        }
    ]


def _training_states(spec: PipelineSpec) -> dict[str, Any]:
    if not spec.settings.tuning_enabled:
        return {
            "TrainModel": {
                "Type": "Task",
                "Resource": _service(spec, "sagemaker:createTrainingJob.sync"),
                "Arguments": training_job_request(spec),
                "Output": _result(spec, "$jobName", "null"),
                "Retry": _transient_retry(),
                "Catch": _catch("TrainModel", "ShouldRetry", job=True),
                "Next": "ModelReady",
            }
        }
    return {
        "TuneModel": {
            "Type": "Task",
            "Resource": _service(spec, "sagemaker:createHyperParameterTuningJob.sync"),
            "Arguments": tuning_job_request(spec),
            "Retry": _transient_retry(),
            "Catch": _catch("TuneModel", "ShouldRetry", job=True),
            "Next": "FindBestTrainingJob",
        },
        "FindBestTrainingJob": {
            "Type": "Task",
            "Resource": _service(spec, "aws-sdk:sagemaker:describeHyperParameterTuningJob"),
            "Arguments": {"HyperParameterTuningJobName": _expr("$jobName")},
            "Output": _result(spec, "$states.result.BestTrainingJob.TrainingJobName", "$jobName"),
            "Retry": _describe_retry(),
            "Catch": _catch("FindBestTrainingJob", "NotifyFailure"),
            "Next": "ModelReady",
        },
    }


@dataclass(frozen=True)
class _JobKind:
    """What the existing-job states need to know of the job their create call made."""

    describe: str
    name_field: str
    status_field: str
    stop_command: str


def _job_kind(spec: PipelineSpec) -> _JobKind:
    if spec.settings.tuning_enabled:
        return _JobKind(
            "describeHyperParameterTuningJob",
            "HyperParameterTuningJobName",
            "HyperParameterTuningJobStatus",
            "aws sagemaker stop-hyper-parameter-tuning-job --hyper-parameter-tuning-job-name",
        )
    return _JobKind(
        "describeTrainingJob",
        "TrainingJobName",
        "TrainingJobStatus",
        "aws sagemaker stop-training-job --training-job-name",
    )


def existing_job_polls(settings: Settings) -> int:
    """How often the existing-job states describe the job before giving up on it: for as long as the job may run
    (its stopping condition; a tuning job's training jobs one batch of parallel jobs after another) and an hour."""
    job_s = settings.max_wait_seconds if settings.use_spot else settings.max_run_seconds
    if settings.tuning_enabled:
        job_s *= -(-settings.tuning_max_jobs // settings.tuning_parallel_jobs)
    return -(-(job_s + EXISTING_JOB_MARGIN_S) // EXISTING_JOB_POLL_S)


def _existing_job_states(spec: PipelineSpec) -> dict[str, Any]:
    """A create call retried in place (a transient error) that SageMaker refuses as a duplicate: the earlier try
    made the job after all. Its name is this attempt's, so the job is this execution's: wait for it as `.sync`
    would, then go on as the job state would (its output on success, the failure path with its description).
    Only documented fields: a Choice rule's Condition, Next and Assign (no Output, no state-level Assign)."""
    kind = _job_kind(spec)
    status = f"$existingJob.{kind.status_field}"
    polls = existing_job_polls(spec.settings)
    still_running = (
        f"'the job ' & $jobName & ' was made by an earlier try of its create call and still runs after ' & $polls & "
        f"' descriptions {EXISTING_JOB_POLL_S} s apart; stop it: {kind.stop_command} ' & $jobName"
    )
    describe: dict[str, Any] = {
        "Type": "Task",
        "Resource": _service(spec, f"aws-sdk:sagemaker:{kind.describe}"),
        "Arguments": {kind.name_field: _expr("$jobName")},
        "Assign": {"polls": _expr("$polls + 1"), "existingJob": _expr("$states.result")},
        "Retry": _describe_retry(),
        "Catch": _catch("DescribeExistingJob", "NotifyFailure"),
        "Next": "ExistingJobStatus",
    }
    if not spec.settings.tuning_enabled:
        describe["Output"] = _result(spec, "$jobName", "null")  # what ModelReady gets if the job has completed
    return {
        "DescribeExistingJob": describe,
        "ExistingJobStatus": {
            "Type": "Choice",
            "Choices": [
                {
                    "Condition": _expr(f"{status} = 'Completed'"),
                    "Next": "FindBestTrainingJob" if spec.settings.tuning_enabled else "ModelReady",
                },
                {
                    # What the `.sync` task would have failed with: States.TaskFailed, the description as the cause.
                    "Condition": _expr(f"{status} in ['Failed', 'Stopped']"),
                    "Assign": {
                        "failure": _expr(
                            f"{{'Error': 'States.TaskFailed', 'Cause': $substring($string($existingJob), 0, "
                            f"{CAUSE_CHARS})}}"
                        ),
                        "failureReason": _expr("$exists($existingJob.FailureReason) ? $existingJob.FailureReason : ''"),
                    },
                    "Next": "ShouldRetry",
                },
                {
                    # Still running after as long as it may run: someone has to look (the message says how to stop it).
                    "Condition": _expr(f"$polls >= {polls}"),
                    "Assign": {
                        "failure": _expr(f"{{'Error': '{EXISTING_JOB_ERROR}', 'Cause': {still_running}}}"),
                        "failureReason": "",
                    },
                    "Next": "NotifyFailure",
                },
            ],
            "Default": "WaitForExistingJob",
        },
        "WaitForExistingJob": {"Type": "Wait", "Seconds": EXISTING_JOB_POLL_S, "Next": "DescribeExistingJob"},
    }


def _failure_states(spec: PipelineSpec) -> dict[str, Any]:
    retryable = " or ".join(
        [
            f"$failure.Error in {_js_list(RETRYABLE_ERRORS)}",
            f"$contains($failureReason, {CAPACITY_FAILURE_REASON})",
        ]
    )
    delay = f"$round($min([{FIRST_RETRY_DELAY_S} * $power(2, $attempt - 1), {MAX_RETRY_DELAY_S}]))"
    message = (
        "$string({'execution': $states.context.Execution.Id, 'job': $jobName, 'attempts': $attempt, "
        "'state': $failedState, 'error': $failure.Error, 'failure_reason': ($failureReason != '' ? $failureReason), "
        "'cause': $failure.Cause})"
    )
    # The execution's error says the pipeline failed; its cause says where and why, then the original cause whole.
    cause = (
        "$substring($failedState & ' failed with ' & $failure.Error & ' (job ' & $jobName & ', attempt ' & $attempt & "
        "')' & ($failureReason != '' ? ': ' & $failureReason : '') & "
        "($exists($failure.Cause) and $failure.Cause != '' ? ' | cause: ' & $failure.Cause : ''), "
        f"0, {MAX_CAUSE_CHARS})"
    )
    return {
        "ShouldRetry": {
            "Type": "Choice",
            "Comment": "A job made by an earlier try of a create call that was tried again is waited for; capacity "
            "failures (by the job's FailureReason) and account limits get another attempt after a wait; anything "
            "else fails.",
            "Choices": [
                {
                    "Condition": _expr(f"$failure.Error = {_js(DUPLICATE_JOB_ERROR)} and $createRetries > 0"),
                    "Assign": {"polls": 0},
                    "Next": "DescribeExistingJob",
                },
                {
                    "Condition": _expr(f"$attempt < {MAX_ATTEMPTS} and ({retryable})"),
                    "Next": "WaitBeforeRetry",
                },
            ],
            "Default": "NotifyFailure",
        },
        "WaitBeforeRetry": {
            "Type": "Wait",
            "Seconds": _expr(delay),
            "Assign": {
                "attempt": _expr("$attempt + 1"),
                "jobName": _expr(f"$jobBase & '{RETRY_SUFFIX}' & ($attempt + 1)"),
            },
            "Next": spec.training_state,
        },
        "NotifyFailure": {
            "Type": "Task",
            "Resource": _service(spec, "sns:publish"),
            "Arguments": {
                "TopicArn": spec.topic_arn,
                "Subject": _expr(f"$substring('Legal GPT-J training failed: ' & $jobName, 0, {SNS_SUBJECT_CHARS})"),
                "Message": _expr(message),
            },
            # The run has failed either way: a notification that cannot be sent must not hide the cause.
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "TrainingFailed"}],
            "Next": "TrainingFailed",
        },
        "TrainingFailed": {
            "Type": "Fail",
            # Not `$failure.Error`: names starting with `States.` are the service's own, and a Fail state that raises
            # one (a failed job is `States.TaskFailed`) ends the execution with a runtime error instead.
            "Error": FAILURE_ERROR,
            "Cause": _expr(cause),
        },
    }


def definition(spec: PipelineSpec) -> dict[str, Any]:
    """The whole state machine definition."""
    return {
        "Comment": "Legal GPT-J: prepare the dataset, fine-tune GPT-J-6B on SageMaker, report the model location.",
        "QueryLanguage": "JSONata",
        "StartAt": "ReadInput",
        "States": {
            **_input_states(spec),
            **_training_states(spec),
            **_existing_job_states(spec),
            **_failure_states(spec),
            "ModelReady": {"Type": "Succeed"},
        },
    }
