"""The stop-on-delete handler: Step Functions against moto on loopback, SageMaker's stop calls through Stubber."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.stub import Stubber

from fakes.moto_server import ACCOUNT, MotoServer
from lambdas.stop_executions import handler
from tests.stop_executions import sagemaker_stubs as stubs

ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/states"
DEFINITION = json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "End": True}}})


@pytest.fixture
def sfn(moto_server: MotoServer) -> Any:
    return moto_server.client("stepfunctions")


@pytest.fixture
def state_machine(sfn: Any) -> str:
    arn: str = sfn.create_state_machine(
        name=f"pipeline-{uuid.uuid4().hex[:8]}", definition=DEFINITION, roleArn=ROLE_ARN
    )["stateMachineArn"]
    return arn


@pytest.fixture
def sagemaker() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def start(sfn: Any, state_machine: str, name: str) -> str:
    arn: str = sfn.start_execution(stateMachineArn=state_machine, name=name, input="{}")["executionArn"]
    return arn


def expect_listing(stubber: Stubber, base: str, training: dict[str, Any], tuning: dict[str, Any] | None = None) -> None:
    query = {"NameContains": base}
    stubber.add_response("list_hyper_parameter_tuning_jobs", tuning or stubs.tuning_summaries(), query)
    stubber.add_response("list_training_jobs", training, query)


def test_create_and_update_do_nothing(state_machine: str) -> None:
    for request in ("Create", "Update"):
        event = {"RequestType": request, "ResourceProperties": {"StateMachineArn": state_machine}}
        with mock.patch.object(handler.boto3, "client", side_effect=AssertionError("no AWS call expected")):
            assert handler.on_event(event, None) == {"PhysicalResourceId": f"{state_machine}/stop-on-delete"}
    event = {
        "RequestType": "Update",
        "PhysicalResourceId": "kept",
        "ResourceProperties": {"StateMachineArn": state_machine},
    }
    assert handler.on_event(event, None) == {"PhysicalResourceId": "kept"}


def test_delete_stops_running_executions_and_exactly_their_jobs(
    sfn: Any, state_machine: str, sagemaker: tuple[Any, Stubber]
) -> None:
    client, stubber = sagemaker
    older = start(sfn, state_machine, "260126-101500-a1b2")
    newer = start(sfn, state_machine, "260126-111500-c3d4")
    finished = start(sfn, state_machine, "260126-091500-e5f6")
    sfn.stop_execution(executionArn=finished)
    # Newest first. The listing matches by substring: a retry of this execution is ours, another execution whose
    # name merely starts the same way and a tuning job's child are not.
    base_newer = "legal-gptj-260126-111500-c3d4"
    expect_listing(stubber, base_newer, stubs.training_summaries(base_newer, f"{base_newer}-r2", f"{base_newer}5"))
    stubber.add_response("stop_training_job", {}, {"TrainingJobName": base_newer})
    stubber.add_response("stop_training_job", {}, {"TrainingJobName": f"{base_newer}-r2"})
    base_older = "legal-gptj-260126-101500-a1b2"
    expect_listing(
        stubber,
        base_older,
        stubs.training_summaries(f"{base_older}-001-0123abcd"),
        stubs.tuning_summaries(base_older),
    )
    stubber.add_response("stop_hyper_parameter_tuning_job", {}, {"HyperParameterTuningJobName": base_older})
    # Then the wait: Stopping, then gone from the active states.
    stubber.add_response(
        "describe_training_job", stubs.training_job(base_newer, "Stopping"), {"TrainingJobName": base_newer}
    )
    stubber.add_response(
        "describe_training_job",
        stubs.training_job(f"{base_newer}-r2", "Failed"),
        {"TrainingJobName": f"{base_newer}-r2"},
    )
    stubber.add_response(
        "describe_hyper_parameter_tuning_job",
        stubs.tuning_job(base_older, "Stopping"),
        {"HyperParameterTuningJobName": base_older},
    )
    stubber.add_response(
        "describe_training_job", stubs.training_job(base_newer, "Stopped"), {"TrainingJobName": base_newer}
    )
    stubber.add_response(
        "describe_hyper_parameter_tuning_job",
        stubs.tuning_job(base_older, "Stopped"),
        {"HyperParameterTuningJobName": base_older},
    )
    clock = FakeClock()

    left = handler.stop_all(sfn, client, state_machine, "stack deleted", deadline=600, clock=clock, sleep=clock.sleep)

    assert left == []
    assert clock.sleeps == [handler.POLL_SECONDS]
    statuses = {
        e["executionArn"]: e["status"] for e in sfn.list_executions(stateMachineArn=state_machine)["executions"]
    }
    assert statuses == {older: "ABORTED", newer: "ABORTED", finished: "ABORTED"}


def test_a_job_already_stopping_is_waited_for_but_not_stopped_again(
    sfn: Any, state_machine: str, sagemaker: tuple[Any, Stubber]
) -> None:
    client, stubber = sagemaker
    start(sfn, state_machine, "racing")
    base = "legal-gptj-racing"
    listed = stubs.training_summaries(base, status="Stopping")
    listed["TrainingJobSummaries"] += stubs.training_summaries(f"{base}-r2", status="Failed")["TrainingJobSummaries"]
    expect_listing(stubber, base, listed)
    # No stop_training_job: the Stubber fails the test on any call it was not told to expect.
    stubber.add_response("describe_training_job", stubs.training_job(base, "Stopped"), {"TrainingJobName": base})
    clock = FakeClock()

    left = handler.stop_all(sfn, client, state_machine, "stack deleted", deadline=600, clock=clock, sleep=clock.sleep)

    assert left == []
    stubber.assert_no_pending_responses()


def test_delete_gives_up_waiting_at_the_deadline(sfn: Any, state_machine: str, sagemaker: tuple[Any, Stubber]) -> None:
    client, stubber = sagemaker
    start(sfn, state_machine, "slow")
    base = "legal-gptj-slow"
    expect_listing(stubber, base, stubs.training_summaries(base))
    stubber.add_response("stop_training_job", {}, {"TrainingJobName": base})
    for _ in range(3):
        stubber.add_response("describe_training_job", stubs.training_job(base, "Stopping"), {"TrainingJobName": base})
    clock = FakeClock()

    left = handler.stop_all(sfn, client, state_machine, "stack deleted", deadline=40, clock=clock, sleep=clock.sleep)

    assert left == [handler.Job("training", base)]
    assert clock.now <= 40


def test_nothing_running_or_no_state_machine_is_fine(
    sfn: Any, state_machine: str, sagemaker: tuple[Any, Stubber]
) -> None:
    client, _ = sagemaker  # no SageMaker call at all
    assert handler.stop_all(sfn, client, state_machine, "r", deadline=10) == []
    gone = state_machine.replace(":stateMachine:", ":stateMachine:missing-")
    assert handler.stop_all(sfn, client, gone, "r", deadline=10) == []


def test_on_event_delete_runs_against_the_configured_endpoints(
    moto_server: MotoServer, sfn: Any, state_machine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Lambda path end to end: clients from the environment, the remaining time from the context."""
    execution = start(sfn, state_machine, "deleted-stack")
    for key, value in moto_server.env().items():
        monkeypatch.setenv(key, value)
    context = mock.Mock(get_remaining_time_in_millis=mock.Mock(return_value=300_000))
    event = {
        "RequestType": "Delete",
        "PhysicalResourceId": "id",
        "ResourceProperties": {"ServiceToken": "x", "StateMachineArn": state_machine},
    }

    assert handler.on_event(event, context) == {"PhysicalResourceId": "id"}

    assert sfn.describe_execution(executionArn=execution)["status"] == "ABORTED"


def test_failures_to_stop_fail_the_delete(sfn: Any, state_machine: str, sagemaker: tuple[Any, Stubber]) -> None:
    client, stubber = sagemaker
    start(sfn, state_machine, "denied")
    expect_listing(stubber, "legal-gptj-denied", stubs.training_summaries("legal-gptj-denied"))
    stubber.add_client_error("stop_training_job", "AccessDeniedException", "not allowed")
    with pytest.raises(client.exceptions.ClientError, match="not allowed"):
        handler.stop_all(sfn, client, state_machine, "r", deadline=10)


def _sha256(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:6]


@pytest.mark.parametrize(
    ("execution", "base"),
    [
        ("260126-101500-a1b2", "legal-gptj-260126-101500-a1b2"),  # make train's names stay whole
        ("exactly-18-chars-x", "legal-gptj-exactly-18-chars-x"),
        # Longer names, or names with characters SageMaker refuses: the first 11 allowed ones and a hash of the name.
        (
            "0c4a6f1e-2b7d-4e3a-9f00-123456789abc",
            "legal-gptj-0c4a6f1e-2b-" + _sha256("0c4a6f1e-2b7d-4e3a-9f00-123456789abc"),
        ),
        ("legal-run-january-01", "legal-gptj-legal-run-j-" + _sha256("legal-run-january-01")),
        ("legal-run-january-02", "legal-gptj-legal-run-j-" + _sha256("legal-run-january-02")),
        ("nightly_run.7", "legal-gptj-nightlyrun7-" + _sha256("nightly_run.7")),
        ("trailing-------------hyphens", "legal-gptj-trailing-" + _sha256("trailing-------------hyphens")),
        ("abc-", "legal-gptj-abc-" + _sha256("abc-")),
        ("abc-r2", "legal-gptj-abc-r2-" + _sha256("abc-r2")),  # not the second attempt of `abc`
        ("___", "legal-gptj-" + _sha256("___")),
    ],
)
def test_job_names_follow_the_execution_name(execution: str, base: str) -> None:
    assert handler.job_base_name(execution) == base
    assert len(f"{base}{handler.RETRY_SUFFIX}9") <= handler.MAX_TUNING_JOB_NAME
    assert handler.is_job_of(base, base) and handler.is_job_of(base, f"{base}{handler.RETRY_SUFFIX}3")
    assert not handler.is_job_of(base, f"{base}-001-0123abcd")
