"""Every request the state machine makes, as its executions made them, checked against botocore's model of the
operation (tests/pipeline/request_model.py): member names, required members, and what botocore's ParamValidator
leaves to the service (patterns, lengths, enums, ranges). Broken requests show that the check fails."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from fakes.stepfunctions import ApiError, JobOutcome, StepFunctions, capacity_failure
from tests.pipeline.conftest import VARIANTS, Account
from tests.pipeline.request_model import OPERATIONS, operation_for, problems

Request = tuple[str, str, dict[str, Any]]

ALGORITHM_ERROR = JobOutcome.failed("AlgorithmError: ExecuteUserScriptError: ExitCode 1", (("Failed", "failed"),))


def task_resources(definition: dict[str, Any]) -> set[tuple[str, str]]:
    """The (resource type, resource) of every Task state, as moto's history names them."""
    found = set()
    for state in definition["States"].values():
        if state["Type"] == "Task":
            integration = state["Resource"].split(":::", 1)[1]  # lambda:invoke, aws-sdk:sagemaker:describe...
            service, _, resource = integration.rpartition(":")
            found.add((service, resource))
    return found


@pytest.fixture(scope="module")
def requests(account: Account) -> list[Request]:
    """The requests of executions that reach every Task state of every variant: successes with and without
    overrides, a retry under a new name, a job made by a create call that answered an error, and failures that
    publish."""
    sf: StepFunctions = account.interpreter
    made_anyway = {"CreateTrainingJob": ApiError.internal_failure(created=True)}
    scripts: list[tuple[str, Any, list[JobOutcome], dict[str, ApiError]]] = [
        ("default", {}, [], {}),
        ("default", {"doc_count": 3, "epochs": 2, "method": "lora"}, [], {}),
        ("default", {}, [ALGORITHM_ERROR], {}),
        ("default", {}, [], made_anyway),
        ("spot", {}, [capacity_failure(), JobOutcome()], {}),
        ("tuning", {"epochs": 1}, [], {}),
        ("tuning", {}, [ALGORITHM_ERROR], {}),
        ("tuning", {}, [], {"CreateHyperParameterTuningJob": ApiError.internal_failure(created=True)}),
        ("lora", {}, [], {}),
        ("short", {}, [], made_anyway),
    ]
    made: list[Request] = []
    for variant, execution_input, outcomes, errors in scripts:
        sf.sagemaker.clear()
        sf.sagemaker.outcomes.extend(outcomes)
        for operation, error in errors.items():
            sf.sagemaker.fail_next(operation, error)
        execution = sf.run(account.pipeline(variant).arn, execution_input)
        made += execution.tasks
    sf.sagemaker.clear()
    account.notifications()
    return made


def test_every_request_the_executions_made_fits_its_operations_model(requests: list[Request]) -> None:
    found = []
    for resource_type, resource, parameters in requests:
        service, operation = operation_for(resource_type, resource)
        found += [f"{operation}: {problem}" for problem in problems(service, operation, parameters)]
    assert found == []


def test_the_executions_reached_every_task_of_every_variant(account: Account, requests: list[Request]) -> None:
    reached = {(resource_type, resource) for resource_type, resource, _ in requests}
    for variant in VARIANTS:
        assert task_resources(account.pipeline(variant).definition) <= reached, variant
    assert reached <= set(OPERATIONS)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(request: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = request
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value

    return mutate


_DELETE = object()


def assert_reported_once(found: list[str], expected: str) -> None:
    """The one problem is reported once: by botocore's ParamValidator or by the checks it leaves out."""
    assert len(found) == 1 and expected in found[0], found


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_set("TrainingJobName", "legal_gptj_run"), "TrainingJobName: 'legal_gptj_run' does not match the pattern"),
        (_set("TrainingJobName", "legal-gptj-" + "x" * 53), "TrainingJobName: 64 characters, expected at most 63"),
        (_set("TrainingJobname", "legal-gptj-x"), 'botocore: Unknown parameter in input: "TrainingJobname"'),
        (_set("RoleArn", _DELETE), 'botocore: Missing required parameter in input: "RoleArn"'),
        (_set("ResourceConfig.InstanceType", "ml.p9.48xlarge"), "'ml.p9.48xlarge' is not one of"),
        (
            _set("ResourceConfig.KeepAlivePeriodInSeconds", 30000),
            "KeepAlivePeriodInSeconds: 30000, expected at most 21600",
        ),
        (
            _set("StoppingCondition.MaxRuntimeInSeconds", 0),
            "StoppingCondition.MaxRuntimeInSeconds, value: 0, valid min value: 1",
        ),
        (_set("HyperParameters.epochs", 3), "botocore: Invalid type for parameter HyperParameters.epochs"),
        (_set("HyperParameters.notes", "x" * 2501), "HyperParameters['notes']: 2501 characters, expected at most"),
        (_set("OutputDataConfig.S3OutputPath", "models/"), "S3OutputPath: 'models/' does not match the pattern"),
        (_set("OutputDataConfig.CompressionType", "ZIP"), "CompressionType: 'ZIP' is not one of"),
        (_set("InputDataConfig.0.ChannelName", "train data"), "ChannelName: 'train data' does not match"),
    ],
)
def test_a_broken_training_job_request_fails_the_check(
    requests: list[Request], mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    (original, *_) = [p for _, resource, p in requests if resource == "createTrainingJob.sync"]
    assert problems("sagemaker", "CreateTrainingJob", original) == []
    broken = copy.deepcopy(original)
    mutate(broken)
    assert_reported_once(problems("sagemaker", "CreateTrainingJob", broken), expected)


@pytest.mark.parametrize(
    ("resource", "mutate", "expected"),
    [
        ("publish", _set("Subject", "x" * 100), "Publish.Subject: 100 characters, expected fewer than 100"),
        ("publish", _set("Subject", "two\nlines"), "Publish.Subject: a line break or control character"),
        ("publish", _set("Message", _DELETE), 'botocore: Missing required parameter in input: "Message"'),
        ("invoke", _set("FunctionName", "prep function"), "FunctionName: 'prep function' does not match"),
        ("invoke", _set("InvocationType", "Async"), "InvocationType: 'Async' is not one of"),
        (
            "createHyperParameterTuningJob.sync",
            _set("HyperParameterTuningJobName", "legal-gptj-" + "x" * 22),
            "HyperParameterTuningJobName: 33 characters, expected at most 32",
        ),
        (
            "createHyperParameterTuningJob.sync",
            _set("HyperParameterTuningJobConfig.Strategy", "Genetic"),
            "Strategy: 'Genetic' is not one of",
        ),
        (
            "createHyperParameterTuningJob.sync",
            _set("HyperParameterTuningJobConfig.ResourceLimits.MaxParallelTrainingJobs", 0),
            "ResourceLimits.MaxParallelTrainingJobs, value: 0, valid min value: 1",
        ),
    ],
)
def test_other_broken_requests_fail_the_check(
    requests: list[Request], resource: str, mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    (resource_type, _, original) = next(r for r in requests if r[1] == resource)
    service, operation = operation_for(resource_type, resource)
    assert problems(service, operation, original) == []
    broken = copy.deepcopy(original)
    mutate(broken)
    assert_reported_once(problems(service, operation, broken), expected)
