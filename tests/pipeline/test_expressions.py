"""Single expressions of the definition evaluated by the `jsonata` engine, with the variables they read bound as
moto binds them: the job-name rule against its Python twin for many names, the failed job's FailureReason read from
causes whole and cut short, and the failure subject's length."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
from moto.stepfunctions.parser.asl.component.intrinsic.jsonata import get_intrinsic_functions_declarations

from fakes.stepfunctions import JsonataEngine
from lambdas.stop_executions.handler import is_job_of, job_base_name
from stacks.constructs import training_definition as td
from tests.pipeline.conftest import Account
from tests.pipeline.request_model import problems

SAGEMAKER_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
NAMES = [
    "260126-101500-a1b2",  # make train's
    "legal-run-january-01",
    "legal-run-january-02",
    "3f2a1b4c-1d2e-4f5a-8b9c-0123456789ab",  # the console's default
    "exactly-18-chars-x",
    "nineteen-characters",
    "my run_1",
    "a_b-c-",
    "abc-",
    "abc",
    "abc-r2",  # looks like a retry of `abc`
    "trailing-------------hyphens",
    "___",
    "-leading",
    "Überprüfung-2026",
    "x" * 80,
]


def evaluate(engine: JsonataEngine, expression: str, **variables: Any) -> Any:
    """As moto composes it: the variables declared first, then the expression (and moto's `$parse`, JSONata's
    `$eval`, where it is used)."""
    declarations = "".join(f"${name} := {json.dumps(value)}; " for name, value in variables.items())
    functions = get_intrinsic_functions_declarations({"$parse"}) if "$parse(" in expression else ""
    return engine.evaluate(f"({functions}{declarations}{expression})")


def expression_of(field: str) -> str:
    assert field.startswith("{% ") and field.endswith(" %}"), field
    return field[3:-3]


@pytest.mark.parametrize("name", NAMES)
def test_the_state_machines_job_name_is_the_python_twins(engine: JsonataEngine, name: str) -> None:
    job = evaluate(engine, td.JOB_BASE_EXPRESSION, states={"context": {"Execution": {"Name": name}}})
    assert job == job_base_name(name)
    assert SAGEMAKER_NAME.fullmatch(f"{job}-r{td.MAX_ATTEMPTS}") and len(f"{job}-r{td.MAX_ATTEMPTS}") <= 32


def test_job_names_of_different_executions_differ() -> None:
    jobs = {name: job_base_name(name) for name in NAMES}
    assert len(set(jobs.values())) == len(NAMES), jobs
    assert not any(is_job_of(jobs["abc"], job) for name, job in jobs.items() if name != "abc")


def test_hash_is_step_functions_hash(engine: JsonataEngine) -> None:
    # The example of the Step Functions developer guide (States.Hash, the same algorithms): SHA-1 of "input data".
    assert evaluate(engine, "$hash('input data', 'SHA-1')") == "aaff4a450a104cd177d28d18d74485e8cae074b7"
    assert evaluate(engine, "$hash('Überprüfung', 'SHA-256')") == hashlib.sha256("Überprüfung".encode()).hexdigest()


@pytest.mark.parametrize("job", ["legal-gptj-260126-101500-a1b2", "legal-gptj-" + "x" * 120])
def test_the_failure_subject_fits_sns_whatever_the_job_name(account: Account, engine: JsonataEngine, job: str) -> None:
    subject_field = account.pipeline().definition["States"]["NotifyFailure"]["Arguments"]["Subject"]
    subject = evaluate(engine, expression_of(subject_field), jobName=job)
    assert subject.startswith("Legal GPT-J training failed: legal-gptj-")
    assert problems("sns", "Publish", {"TopicArn": account.topic_arn, "Message": "m", "Subject": subject}) == []


# A failed job's description as Step Functions' cause holds it: FailureReason early, long transitions after it.
DESCRIPTION = {
    "TrainingJobName": "legal-gptj-x",
    "TrainingJobStatus": "Failed",
    "FailureReason": 'AlgorithmError: ExitCode 1 ErrorMessage "a \\ b / é\n\t\u0007" ☃',
    "HyperParameters": {"method": "full", "note": '{"FailureReason": "not this one"}'},
    "SecondaryStatusTransitions": [{"Status": "Training", "StatusMessage": f"step {n}"} for n in range(8)],
}


def failure_reason(engine: JsonataEngine, error: str, cause: Any) -> Any:
    return evaluate(engine, td.JOB_FAILURE_REASON, states={"errorOutput": {"Error": error, "Cause": cause}})


@pytest.mark.parametrize("separators", [(",", ":"), (", ", ": ")], ids=["compact", "spaced"])
def test_the_failure_reason_is_read_from_the_cause_and_never_raises_on_a_cut_one(
    engine: JsonataEngine, separators: tuple[str, str]
) -> None:
    for ensure_ascii in (True, False):
        cause = json.dumps(DESCRIPTION, separators=separators, ensure_ascii=ensure_ascii)
        assert failure_reason(engine, "States.TaskFailed", cause) == DESCRIPTION["FailureReason"]
        # Cut anywhere: the whole reason while its closing quote is kept, else nothing; never an error.
        encoded = json.dumps(DESCRIPTION["FailureReason"], ensure_ascii=ensure_ascii)
        kept_from = cause.index(encoded) + len(encoded)  # the closing quote is in cause[:kept_from]
        for end in range(0, len(cause), 5):
            expected = DESCRIPTION["FailureReason"] if end >= kept_from else ""
            assert failure_reason(engine, "States.TaskFailed", cause[:end]) == expected, cause[:end]


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        ("States.TaskFailed", "not JSON: the job failed"),
        ("States.TaskFailed", json.dumps({"TrainingJobStatus": "Stopped"})),
        ("States.TaskFailed", ""),
        ("States.TaskFailed", None),
        ("SageMaker.AmazonSageMakerException", json.dumps({"FailureReason": "CapacityError: not a job's"})),
        ("States.Timeout", json.dumps(DESCRIPTION)),
    ],
)
def test_the_failure_reason_is_empty_without_a_failed_jobs_description(
    engine: JsonataEngine, error: str, cause: Any
) -> None:
    assert failure_reason(engine, error, cause) == ""
