"""The pipeline's state machine executed end to end in moto's ASL interpreter with the `jsonata` engine (issue 11):
each scenario checks the states taken, the requests made (to the prep Lambda, to SageMaker, to SNS) and the output.

SageMaker's side is scripted per scenario (fakes/stepfunctions.py: job outcomes and API errors); waits are recorded,
not slept. Execution names are unique per test: moto keeps jobs and executions for the whole package.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from fakes.moto_server import list_keys
from fakes.stepfunctions import CAUSE_CHARS, ApiError, Execution, JobOutcome, StepFunctions, capacity_failure
from lambdas.dataset_prep.errors import ChecksumError
from lambdas.stop_executions.handler import job_base_name
from stacks.constructs import training_definition as td
from tests.pipeline.conftest import BUCKET, REGION, Account, Runner, minimal_training_job

HAPPY = ["ReadInput", "ValidateInput", "PrepareDataset", "TrainModel", "ModelReady"]
FAILED_AFTER_TRAINING = ["ShouldRetry", "NotifyFailure", "TrainingFailed"]
# A secondary status message SageMaker prints while it waits for instances, on the way to any outcome.
EC2_CAPACITY_MESSAGE = "Insufficient capacity error from EC2 while launching instances, retrying!"


def created(sf: StepFunctions, operation: str = "CreateTrainingJob") -> list[dict[str, Any]]:
    """The create requests SageMaker received (refused ones included), in order."""
    return [request for name, request in sf.sagemaker.calls if name == operation]


def job_names(sf: StepFunctions) -> list[str]:
    return [request["TrainingJobName"] for request in created(sf)]


def model_uri(job: str) -> str:
    return f"s3://{BUCKET}/models/{job}/output/model/"


def assert_notified_once(account: Account, job: str, error: str) -> dict[str, Any]:
    (notification,) = account.notifications()
    assert notification["Subject"] == f"Legal GPT-J training failed: {job}"
    message: dict[str, Any] = json.loads(notification["Message"])
    assert (message["job"], message["error"]) == (job, error)
    return message


# ---------------------------------------------------------------- happy paths


def test_default_input_runs_the_deployed_configuration(run: Runner, sf: StepFunctions, account: Account) -> None:
    execution = run({}, name="260126-101500-a1b2")
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.states == HAPPY
    assert sf.lambdas.invocations == [("prep", {"doc_count": 693})]
    (request,) = created(sf)
    job = "legal-gptj-260126-101500-a1b2"
    assert request["TrainingJobName"] == job == job_base_name(execution.name)
    hyperparameters = request["HyperParameters"]
    assert (hyperparameters["epochs"], hyperparameters["method"], hyperparameters["learning_rate"]) == (
        "3",
        "full",
        "2e-05",
    )
    dataset = execution.output["dataset_id"]
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]}
    assert channels == {name: f"s3://{BUCKET}/datasets/{dataset}/{name}/" for name in ("train", "validation")}
    s3 = sf.client("s3")
    for uri in channels.values():  # the channels hold what the prep wrote
        assert list_keys(s3, BUCKET, uri.removeprefix(f"s3://{BUCKET}/"))
    assert request["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/models/"
    assert "CheckpointConfig" not in request and request["EnableManagedSpotTraining"] is False
    assert execution.output == {
        "training_job_name": job,
        "tuning_job_name": None,
        "model_s3_uri": model_uri(job),
        "dataset_id": dataset,
        "manifest_uri": f"s3://{BUCKET}/datasets/{dataset}/manifest.json",
        "attempts": 1,
    }
    described = sf.client("sagemaker").describe_training_job(TrainingJobName=job)
    assert described["ModelArtifacts"]["S3ModelArtifacts"] == execution.output["model_s3_uri"]
    assert sf.clock.waits == [] and sf.clock.retry_intervals == [] and account.notifications() == []


def test_execution_input_overrides_doc_count_epochs_and_method(run: Runner, sf: StepFunctions) -> None:
    execution = run({"doc_count": 4, "epochs": 1, "method": "lora", "Comment": "from the console"})
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.states == HAPPY
    assert sf.lambdas.invocations == [("prep", {"doc_count": 4})]
    (request,) = created(sf)
    assert (request["HyperParameters"]["epochs"], request["HyperParameters"]["method"]) == ("1", "lora")
    manifest = sf.client("s3").get_object(Bucket=BUCKET, Key=execution.output["manifest_uri"].split("/", 3)[3])
    assert json.loads(manifest["Body"].read())["config"]["doc_count"] == 4


@pytest.mark.parametrize(
    "execution_input",
    [
        {"doc_cuont": 4},
        {"doc_count": 0},
        {"doc_count": 694},
        {"doc_count": 2.5},
        {"doc_count": "4"},
        {"doc_count": True},
        {"epochs": 0},
        {"epochs": 101},
        {"epochs": None},
        {"method": "LORA"},
        {"method": 'lo"ra'},  # a quote: moto's unescaped string variables would break the expression
        [],
        "doc_count=4",
        4,
    ],
    ids=repr,
)
def test_bad_input_fails_at_once_without_a_job(run: Runner, sf: StepFunctions, execution_input: Any) -> None:
    execution = run(execution_input)
    assert (execution.status, execution.error) == ("FAILED", "InvalidInput"), execution.cause
    assert execution.states == ["ReadInput", "ValidateInput", "InvalidInput"]
    assert "doc_count (an integer from 1 to 693)" in str(execution.cause)
    assert sf.lambdas.invocations == [] and sf.sagemaker.calls == []


def test_the_lora_configuration_trains_lora(run: Runner, sf: StepFunctions) -> None:
    execution = run({}, variant="lora")
    assert execution.status == "SUCCEEDED", execution.cause
    (request,) = created(sf)
    assert request["HyperParameters"]["method"] == "lora"


def test_spot_training_checkpoints_under_the_job_of_each_attempt(run: Runner, sf: StepFunctions) -> None:
    sf.sagemaker.outcomes.extend([capacity_failure(), JobOutcome()])
    execution = run({}, variant="spot", name="spot-run-1")
    assert execution.status == "SUCCEEDED", execution.cause
    first, second = created(sf)
    for request in (first, second):
        assert request["EnableManagedSpotTraining"] is True
        assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 36000, "MaxWaitTimeInSeconds": 72000}
        job = request["TrainingJobName"]
        assert request["CheckpointConfig"] == {
            "S3Uri": f"s3://{BUCKET}/checkpoints/{job}/",
            "LocalPath": "/opt/ml/checkpoints",
        }
    assert [first["TrainingJobName"], second["TrainingJobName"]] == [
        "legal-gptj-spot-run-1",
        "legal-gptj-spot-run-1-r2",
    ]


def test_tuning_reports_the_best_training_jobs_model(run: Runner, sf: StepFunctions) -> None:
    sf.sagemaker.outcomes.append(JobOutcome(best_job_number=2, best_objective=1.25))
    execution = run({"epochs": 2}, variant="tuning", name="tune-1")
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.states == ["ReadInput", "ValidateInput", "PrepareDataset", "TuneModel", "FindBestTrainingJob",
                                "ModelReady"]  # fmt: skip
    (request,) = created(sf, "CreateHyperParameterTuningJob")
    tuning = "legal-gptj-tune-1"
    assert request["HyperParameterTuningJobName"] == tuning
    definition = request["TrainingJobDefinition"]
    assert "learning_rate" not in definition["StaticHyperParameters"]
    assert definition["StaticHyperParameters"]["epochs"] == "2"
    assert created(sf) == []  # no single training job
    (describe,) = execution.requests("describeHyperParameterTuningJob")
    assert describe == {"HyperParameterTuningJobName": tuning}
    best = execution.output["training_job_name"]
    assert best.startswith(f"{tuning}-002-") and len(best) == len(tuning) + 13
    assert execution.output["tuning_job_name"] == tuning
    assert execution.output["model_s3_uri"] == model_uri(best)
    # The best job's learning rate lies in the range the request searched (its middle on the log scale).
    (searched,) = request["HyperParameterTuningJobConfig"]["ParameterRanges"]["ContinuousParameterRanges"]
    described = sf.client("sagemaker").describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning)
    tuned = described["BestTrainingJob"]["TunedHyperParameters"]
    assert tuned.keys() == {searched["Name"]} == {"learning_rate"}
    low, high = float(searched["MinValue"]), float(searched["MaxValue"])
    assert (
        float(tuned["learning_rate"]) == pytest.approx(math.sqrt(low * high))
        and low < float(tuned["learning_rate"]) < high
    )


# ---------------------------------------------------------------- capacity


def test_a_capacity_failure_gets_a_new_job_after_ten_minutes(run: Runner, sf: StepFunctions, account: Account) -> None:
    sf.sagemaker.outcomes.extend([capacity_failure(), JobOutcome()])
    execution = run({}, name="260126-101500-c0c0")
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.states == [*HAPPY[:4], "ShouldRetry", "WaitBeforeRetry", "TrainModel", "ModelReady"]
    base = "legal-gptj-260126-101500-c0c0"
    assert job_names(sf) == [base, f"{base}-r2"]
    assert execution.task_errors() == ["States.TaskFailed"]
    assert sf.clock.waits == [600]
    assert execution.output["training_job_name"] == f"{base}-r2" and execution.output["attempts"] == 2
    assert execution.output["model_s3_uri"] == model_uri(f"{base}-r2")
    assert account.notifications() == []


def test_an_account_limit_is_retried_like_capacity(run: Runner, sf: StepFunctions) -> None:
    sf.sagemaker.fail_next("CreateTrainingJob", ApiError.resource_limit())
    execution = run({}, name="limit-1")
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.task_errors() == ["SageMaker.ResourceLimitExceededException"]
    assert job_names(sf) == ["legal-gptj-limit-1", "legal-gptj-limit-1-r2"]
    assert sf.clock.waits == [600]


def test_four_capacity_failures_notify_and_fail_with_the_projects_error(
    run: Runner, sf: StepFunctions, account: Account
) -> None:
    sf.sagemaker.outcomes.extend([capacity_failure()] * 4)
    execution = run({}, name="260126-101500-dead")
    base = "legal-gptj-260126-101500-dead"
    jobs = [base, f"{base}-r2", f"{base}-r3", f"{base}-r4"]
    assert job_names(sf) == jobs
    assert sf.clock.waits == [600, 1200, 2400]
    assert execution.states == [
        *HAPPY[:3],
        *["TrainModel", "ShouldRetry", "WaitBeforeRetry"] * 3,
        "TrainModel",
        *FAILED_AFTER_TRAINING,
    ]
    assert (execution.status, execution.error) == ("FAILED", "PipelineFailed")
    cause = str(execution.cause)
    assert cause.startswith(
        f"TrainModel failed with States.TaskFailed (job {base}-r4, attempt 4): CapacityError: Unable to provision"
    )
    # The original cause follows whole: the failed job's description.
    described = json.loads(cause.split(" | cause: ", 1)[1])
    assert (described["TrainingJobName"], described["TrainingJobStatus"]) == (f"{base}-r4", "Failed")
    message = assert_notified_once(account, f"{base}-r4", "States.TaskFailed")
    assert message["attempts"] == 4 and message["failure_reason"].startswith("CapacityError:")
    assert json.loads(message["cause"])["TrainingJobName"] == f"{base}-r4"


# ---------------------------------------------------------------- API errors


def test_a_throttled_create_is_retried_in_place(run: Runner, sf: StepFunctions, account: Account) -> None:
    sf.sagemaker.fail_next("CreateTrainingJob", ApiError.throttling())
    execution = run({}, name="throttled-once")
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.states == HAPPY  # the task's Retry, not a new attempt
    assert job_names(sf) == ["legal-gptj-throttled-once"] * 2
    assert execution.task_errors() == ["SageMaker.AmazonSageMakerException"]
    (interval,) = sf.clock.retry_intervals
    assert 0 <= interval <= 30  # full jitter on 30 s
    assert sf.clock.waits == [] and account.notifications() == []


def test_a_create_that_stays_throttled_fails_after_three_retries(
    run: Runner, sf: StepFunctions, account: Account
) -> None:
    sf.sagemaker.always["CreateTrainingJob"] = ApiError.throttling()
    execution = run({}, name="throttled-always")
    job = "legal-gptj-throttled-always"
    assert job_names(sf) == [job] * 4
    assert execution.task_errors() == ["SageMaker.AmazonSageMakerException"] * 4
    assert len(sf.clock.retry_intervals) == 3
    assert all(0 <= i <= cap for i, cap in zip(sf.clock.retry_intervals, (30, 60, 120), strict=True))
    assert execution.states == [*HAPPY[:4], *FAILED_AFTER_TRAINING]
    assert (execution.status, execution.error) == ("FAILED", "PipelineFailed")
    assert "SageMaker.AmazonSageMakerException" in str(execution.cause)
    assert "Error Code: ThrottlingException" in str(execution.cause)
    assert_notified_once(account, job, "SageMaker.AmazonSageMakerException")


def test_an_algorithm_error_is_not_retried_even_if_its_status_messages_mention_capacity(
    run: Runner, sf: StepFunctions, account: Account
) -> None:
    reason = 'AlgorithmError: ExecuteUserScriptError: ExitCode 2 ErrorMessage "train.py: error: unrecognized arguments"'
    sf.sagemaker.outcomes.append(
        JobOutcome.failed(
            reason,
            (
                ("Starting", EC2_CAPACITY_MESSAGE),
                ("Starting", "Preparing the instances for training"),
                ("Training", "Training image download completed. Training in progress."),
                ("Failed", "Training job failed"),
            ),
        )
    )
    execution = run({}, name="broken-script")
    job = "legal-gptj-broken-script"
    assert job_names(sf) == [job]
    assert execution.states == [*HAPPY[:4], *FAILED_AFTER_TRAINING]
    assert sf.clock.waits == []
    assert (execution.status, execution.error) == ("FAILED", "PipelineFailed")
    assert str(execution.cause).startswith(f"TrainModel failed with States.TaskFailed (job {job}, attempt 1): {reason}")
    assert EC2_CAPACITY_MESSAGE in str(execution.cause)  # the whole description is kept
    assert assert_notified_once(account, job, "States.TaskFailed")["failure_reason"] == reason


def test_an_algorithm_error_that_names_a_capacity_error_later_is_not_retried(
    run: Runner, sf: StepFunctions, account: Account
) -> None:
    # Only a FailureReason that starts with the capacity error is one: the script's own message may quote it.
    reason = (
        'AlgorithmError: ExecuteUserScriptError: ExitCode 1 ErrorMessage "RuntimeError: CapacityError: Unable to '
        'provision requested ML compute capacity (raised by a test double in train.py)"'
    )
    sf.sagemaker.outcomes.append(JobOutcome.failed(reason, (("Training", "Training in progress."), ("Failed", "x"))))
    execution = run({}, name="quotes-capacity")
    job = "legal-gptj-quotes-capacity"
    assert job_names(sf) == [job]
    assert execution.states == [*HAPPY[:4], *FAILED_AFTER_TRAINING]
    assert sf.clock.waits == []
    assert (execution.status, execution.error) == ("FAILED", "PipelineFailed")
    assert assert_notified_once(account, job, "States.TaskFailed")["failure_reason"] == reason


def test_a_job_description_cut_short_of_json_is_still_notified_and_fails_with_the_projects_error(
    run: Runner, sf: StepFunctions, account: Account
) -> None:
    # A long job's status transitions make its description longer than a cause may be: the cause is cut, no
    # longer JSON, and reading its FailureReason must not raise (an expression that raises ends the execution there).
    reason = 'AlgorithmError: ExecuteUserScriptError: ExitCode 137 ErrorMessage "Killed"'
    spot_restarts = tuple(
        (status, f"{message} (spot interruption {n})")
        for n in range(300)
        for status, message in (("Interrupted", "Spot instance interrupted"), ("Training", "Training in progress."))
    )
    sf.sagemaker.outcomes.append(JobOutcome.failed(reason, (*spot_restarts, ("Failed", "Training job failed"))))
    execution = run({}, name="cut-cause")
    job = "legal-gptj-cut-cause"
    assert job_names(sf) == [job]
    (cause,) = [e["taskFailedEventDetails"]["cause"] for e in execution.history if "taskFailedEventDetails" in e]
    assert len(cause) == CAUSE_CHARS and cause.startswith("{")
    with pytest.raises(json.JSONDecodeError):
        json.loads(cause)
    assert execution.states == [*HAPPY[:4], *FAILED_AFTER_TRAINING]
    assert (execution.status, execution.error) == ("FAILED", "PipelineFailed")
    assert str(execution.cause).startswith(f"TrainModel failed with States.TaskFailed (job {job}, attempt 1): {reason}")
    assert assert_notified_once(account, job, "States.TaskFailed")["failure_reason"] == reason


def test_a_failed_prep_is_notified_and_fails_without_a_job(run: Runner, sf: StepFunctions, account: Account) -> None:
    execution = run({"doc_count": 5}, prep="broken", name="bad-archive")
    assert execution.states == ["ReadInput", "ValidateInput", "PrepareDataset", "NotifyFailure", "TrainingFailed"]
    assert sf.lambdas.invocations == [("prep-wrong-md5", {"doc_count": 5})]
    assert sf.sagemaker.calls == []
    assert execution.task_errors() == [ChecksumError.__name__]
    assert (execution.status, execution.error) == ("FAILED", "PipelineFailed")
    cause = str(execution.cause)
    assert cause.startswith(
        "PrepareDataset failed with ChecksumError (job legal-gptj-bad-archive, attempt 1) | cause: "
    )
    assert json.loads(cause.split(" | cause: ", 1)[1])["errorType"] == "ChecksumError"
    assert "failure_reason" not in assert_notified_once(account, "legal-gptj-bad-archive", "ChecksumError")


# ---------------------------------------------------------------- a job made by a create call that answered an error

ADOPTED = [*HAPPY[:4], "ShouldRetry", "DescribeExistingJob", "ExistingJobStatus", "WaitForExistingJob",
           "DescribeExistingJob", "ExistingJobStatus"]  # fmt: skip


def describe_requests(execution: Execution, operation: str = "describeTrainingJob") -> list[dict[str, Any]]:
    return execution.requests(operation)


@pytest.mark.parametrize("error", [ApiError.internal_failure(created=True), ApiError.throttling_after_create()])
def test_a_job_made_by_a_create_that_answered_an_error_is_waited_for(
    run: Runner, sf: StepFunctions, account: Account, error: ApiError
) -> None:
    # The first try made the job, then answered a transient error; the retry in place sends the same name.
    sf.sagemaker.fail_next("CreateTrainingJob", error)
    execution = run({}, name=f"made-anyway-{error.status}")
    job = f"legal-gptj-made-anyway-{error.status}"
    assert execution.status == "SUCCEEDED", execution.cause
    assert job_names(sf) == [job, job]
    assert execution.task_errors() == ["SageMaker.AmazonSageMakerException", "SageMaker.ResourceInUseException"]
    assert execution.states == [*ADOPTED, "ModelReady"]  # InProgress, a wait, Completed
    assert describe_requests(execution) == [{"TrainingJobName": job}] * 2
    assert sf.clock.waits == [td.EXISTING_JOB_POLL_S]
    # As the `.sync` task would have ended: the same output.
    assert execution.output == {
        "training_job_name": job,
        "tuning_job_name": None,
        "model_s3_uri": model_uri(job),
        "dataset_id": execution.output["dataset_id"],
        "manifest_uri": execution.output["manifest_uri"],
        "attempts": 1,
    }
    assert sf.client("sagemaker").describe_training_job(TrainingJobName=job)["TrainingJobStatus"] == "Completed"
    assert account.notifications() == []


def test_a_job_made_anyway_that_fails_for_capacity_gets_a_new_attempt(
    run: Runner, sf: StepFunctions, account: Account
) -> None:
    sf.sagemaker.fail_next("CreateTrainingJob", ApiError.internal_failure(created=True))
    sf.sagemaker.outcomes.extend([capacity_failure(), JobOutcome()])
    execution = run({}, name="anyway-capacity")
    base = "legal-gptj-anyway-capacity"
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.states == [*ADOPTED, "ShouldRetry", "WaitBeforeRetry", "TrainModel", "ModelReady"]
    assert job_names(sf) == [base, base, f"{base}-r2"]
    assert sf.clock.waits == [td.EXISTING_JOB_POLL_S, 600]
    assert execution.output["training_job_name"] == f"{base}-r2" and execution.output["attempts"] == 2
    assert account.notifications() == []


def test_a_job_made_anyway_that_fails_is_notified_as_the_job_states_failure(
    run: Runner, sf: StepFunctions, account: Account
) -> None:
    reason = "AlgorithmError: ExecuteUserScriptError: ExitCode 1"
    sf.sagemaker.fail_next("CreateTrainingJob", ApiError.internal_failure(created=True))
    sf.sagemaker.outcomes.append(JobOutcome.failed(reason, (("Failed", "Training job failed"),)))
    execution = run({}, name="anyway-broken")
    job = "legal-gptj-anyway-broken"
    assert execution.states == [*ADOPTED, *FAILED_AFTER_TRAINING]
    assert (execution.status, execution.error) == ("FAILED", "PipelineFailed")
    cause = str(execution.cause)
    assert cause.startswith(f"TrainModel failed with States.TaskFailed (job {job}, attempt 1): {reason} | cause: ")
    assert json.loads(cause.split(" | cause: ", 1)[1])["TrainingJobStatus"] == "Failed"
    assert assert_notified_once(account, job, "States.TaskFailed")["failure_reason"] == reason


def test_a_job_made_anyway_that_outlasts_its_stopping_condition_is_notified_with_how_to_stop_it(
    run: Runner, sf: StepFunctions, account: Account
) -> None:
    sf.sagemaker.fail_next("CreateTrainingJob", ApiError.internal_failure(created=True))
    sf.sagemaker.outcomes.append(JobOutcome(waits=10**6))  # a job stuck in InProgress (or Stopping)
    execution = run({}, variant="short", name="anyway-stuck")
    job = "legal-gptj-anyway-stuck"
    polls = td.existing_job_polls(account.pipeline("short").settings)
    assert polls == 24  # (an hour of run time + an hour) / 5 minutes
    assert len(describe_requests(execution)) == polls and sf.clock.waits == [td.EXISTING_JOB_POLL_S] * (polls - 1)
    assert execution.states[-3:] == ["ExistingJobStatus", "NotifyFailure", "TrainingFailed"]
    assert (execution.status, execution.error) == ("FAILED", "PipelineFailed")
    message = assert_notified_once(account, job, "JobStillRunning")
    assert message["cause"].endswith(f"still runs after {polls} descriptions 300 s apart; stop it: "
                                     f"aws sagemaker stop-training-job --training-job-name {job}")  # fmt: skip
    assert sf.client("sagemaker").describe_training_job(TrainingJobName=job)["TrainingJobStatus"] == "InProgress"


def test_a_name_taken_by_a_job_this_execution_did_not_make_is_not_waited_for(
    run: Runner, sf: StepFunctions, account: Account
) -> None:
    # ResourceInUse at the first try: the name was taken before (not by an earlier try of this create call).
    job = "legal-gptj-name-taken"
    sf.sagemaker.client(REGION).create_training_job(**minimal_training_job(job, account.role_arn))
    sf.sagemaker.calls.clear()
    execution = run({}, name="name-taken")
    assert job_names(sf) == [job]
    assert execution.task_errors() == ["SageMaker.ResourceInUseException"]
    assert execution.states == [*HAPPY[:4], *FAILED_AFTER_TRAINING]
    assert describe_requests(execution) == []
    assert_notified_once(account, job, "SageMaker.ResourceInUseException")


def test_a_tuning_job_made_by_a_create_that_answered_an_error_is_waited_for(run: Runner, sf: StepFunctions) -> None:
    sf.sagemaker.fail_next("CreateHyperParameterTuningJob", ApiError.internal_failure(created=True))
    execution = run({}, variant="tuning", name="tune-anyway")
    tuning = "legal-gptj-tune-anyway"
    assert execution.status == "SUCCEEDED", execution.cause
    assert [r["HyperParameterTuningJobName"] for r in created(sf, "CreateHyperParameterTuningJob")] == [tuning] * 2
    states = [s.replace("TrainModel", "TuneModel") for s in ADOPTED]
    assert execution.states == [*states, "FindBestTrainingJob", "ModelReady"]
    assert (
        describe_requests(execution, "describeHyperParameterTuningJob") == [{"HyperParameterTuningJobName": tuning}] * 3
    )  # twice while waiting, then FindBestTrainingJob
    assert execution.output["tuning_job_name"] == tuning
    assert execution.output["training_job_name"].startswith(f"{tuning}-001-")


# ---------------------------------------------------------------- job names


def test_hand_named_executions_that_share_their_first_characters_get_their_own_jobs(
    run: Runner, sf: StepFunctions
) -> None:
    first = run({}, name="legal-run-january-01")
    second = run({}, name="legal-run-january-02")
    assert (first.status, second.status) == ("SUCCEEDED", "SUCCEEDED"), (first.cause, second.cause)
    names = job_names(sf)
    assert names == [job_base_name("legal-run-january-01"), job_base_name("legal-run-january-02")]
    assert len(set(names)) == 2 and all(len(f"{n}-r4") <= 32 for n in names)
