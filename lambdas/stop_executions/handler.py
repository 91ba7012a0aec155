"""Stops the training pipeline's running executions and the SageMaker jobs they started (stdlib + boto3 only).

Two callers:

* The TrainingStack's custom resource (`handler.on_event`, through the CDK Provider framework): on Delete it stops
  every RUNNING execution of the state machine named in its properties, stops their training or tuning jobs and
  waits (within the invocation's time) until the jobs have left InProgress/Stopping, so that deleting the stack
  leaves nothing billing and the job role still exists while a stopping job uploads its output. Create and Update
  do nothing.
* `make train ARGS=--stop` (ops/train.py) for the latest running execution.

Job names are derived from the execution name (`job_base_name`); the state machine builds the same names with the
JSONata expression in stacks/constructs/training_definition.py, which imports the constants below so that the two
rules cannot drift apart (tests/pipeline evaluates that expression with the JSONata engine against this function).
A retried attempt appends `-r<attempt>` to the base name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

JOB_NAME_PREFIX = "legal-gptj-"
# SageMaker caps tuning job names at 32 characters; "-r<attempt>" (3 characters) must still fit.
MAX_TUNING_JOB_NAME = 32
RETRY_SUFFIX_CHARS = 3
# An execution name of at most this many allowed characters (and no other) becomes the whole job name.
EXECUTION_NAME_CHARS = MAX_TUNING_JOB_NAME - RETRY_SUFFIX_CHARS - len(JOB_NAME_PREFIX)
# Characters that SageMaker job names allow ([a-zA-Z0-9-]); everything else in the execution name is dropped.
DISALLOWED_CHARACTERS = "[^A-Za-z0-9-]"
# Any other name keeps its first allowed characters and gets a short hash of the whole name, so that two executions
# whose names only differ further on (or in dropped characters) still get two jobs. Step Functions' JSONata has
# $hash with SHA-256 (hexadecimal); 6 digits leave two such names a 1 in 16.7 million chance of sharing a job name.
NAME_HASH_ALGORITHM = "SHA-256"
NAME_HASH_CHARS = 6
HASHED_NAME_CHARS = EXECUTION_NAME_CHARS - 1 - NAME_HASH_CHARS
# A whole name that already ends like a retry's suffix is hashed too, so that execution `x-r2` never runs the job
# of the second attempt of execution `x`.
RETRY_LIKE_ENDING = "-r[0-9]+$"
ACTIVE_JOB_STATUSES = frozenset({"InProgress", "Stopping"})
STOP_ERROR = "PipelineStopped"
# Left for the Provider framework to report back after the wait, out of the invocation's time.
RESPONSE_RESERVE_S = 30.0
POLL_SECONDS = 15.0
# The state machine names attempt n > 1 `<base>-r<n>` (stacks/constructs/training_definition.py).
RETRY_SUFFIX = "-r"


def job_base_name(execution_name: str) -> str:
    """The job name of an execution's first attempt: the prefix and the execution name when that is a short name of
    allowed characters (`make train`'s are), else the prefix, the name's first allowed characters and a hash."""
    kept = re.sub(DISALLOWED_CHARACTERS, "", execution_name)
    whole = kept[:EXECUTION_NAME_CHARS].rstrip("-")
    if whole == execution_name and not re.search(RETRY_LIKE_ENDING, execution_name):
        return JOB_NAME_PREFIX + execution_name
    head = kept[:HASHED_NAME_CHARS].rstrip("-")
    algorithm = NAME_HASH_ALGORITHM.replace("-", "").lower()  # SHA-256 -> sha256
    digest = hashlib.new(algorithm, execution_name.encode("utf-8")).hexdigest()[:NAME_HASH_CHARS]
    return JOB_NAME_PREFIX + (f"{head}-" if head else "") + digest


def is_job_of(base: str, job_name: str) -> bool:
    """Whether `job_name` is one of the attempts of the execution whose base name is `base` (not a tuning job's
    child, and not another execution whose name merely starts the same way)."""
    return re.fullmatch(re.escape(base + RETRY_SUFFIX) + r"\d+|" + re.escape(base), job_name) is not None


@dataclass(frozen=True)
class Job:
    kind: str  # "training" or "tuning"
    name: str
    status: str = field(default="InProgress", compare=False)  # as listed


def _log(message: str, **fields: Any) -> None:
    print(json.dumps({"message": message, **fields}, default=str), flush=True)


def running_executions(sfn: Any, state_machine_arn: str) -> list[dict[str, Any]]:
    """RUNNING executions of the state machine, newest first; none when the state machine is gone."""
    executions: list[dict[str, Any]] = []
    try:
        for page in sfn.get_paginator("list_executions").paginate(
            stateMachineArn=state_machine_arn, statusFilter="RUNNING"
        ):
            executions.extend(page.get("executions", []))
    except sfn.exceptions.StateMachineDoesNotExist:
        return []
    return sorted(executions, key=lambda e: e["startDate"], reverse=True)


def active_jobs(sagemaker: Any, base: str) -> list[Job]:
    """The execution's training or tuning jobs that are in progress or already stopping."""
    listings = [
        ("tuning", "list_hyper_parameter_tuning_jobs", "HyperParameterTuningJob"),
        ("training", "list_training_jobs", "TrainingJob"),
    ]
    jobs = [
        Job(kind, summary[f"{field_prefix}Name"], summary[f"{field_prefix}Status"])
        for kind, operation, field_prefix in listings
        for summary in sagemaker.get_paginator(operation)
        .paginate(NameContains=base)
        .search(f"{field_prefix}Summaries[]")
    ]
    return [job for job in jobs if job.status in ACTIVE_JOB_STATUSES and is_job_of(base, job.name)]


def stop_job(sagemaker: Any, job: Job) -> None:
    if job.kind == "tuning":
        sagemaker.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=job.name)
    else:
        sagemaker.stop_training_job(TrainingJobName=job.name)


def job_status(sagemaker: Any, job: Job) -> str:
    if job.kind == "tuning":
        described = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=job.name)
        return str(described["HyperParameterTuningJobStatus"])
    return str(sagemaker.describe_training_job(TrainingJobName=job.name)["TrainingJobStatus"])


def stop_execution_and_jobs(sfn: Any, sagemaker: Any, execution: Mapping[str, Any], reason: str) -> list[Job]:
    """Stop one execution, then its jobs: Step Functions also tries to stop a `.sync` job when its execution stops,
    but that is best effort, and on stack deletion its role may be gone before it gets there."""
    with contextlib.suppress(sfn.exceptions.ExecutionDoesNotExist):
        sfn.stop_execution(executionArn=execution["executionArn"], error=STOP_ERROR, cause=reason)
    jobs = active_jobs(sagemaker, job_base_name(str(execution["name"])))
    for job in jobs:
        if job.status == "InProgress":  # one already stopping (Step Functions' own stop) is only waited for
            stop_job(sagemaker, job)
    return jobs


def wait_until_stopped(
    sagemaker: Any,
    jobs: list[Job],
    deadline: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = POLL_SECONDS,
) -> list[Job]:
    """Poll until every job has left InProgress/Stopping or `deadline` (a `clock()` value) passes; the jobs still
    active then."""
    pending = list(jobs)
    while pending:
        pending = [job for job in pending if job_status(sagemaker, job) in ACTIVE_JOB_STATUSES]
        if not pending or clock() + poll_seconds > deadline:
            break
        sleep(poll_seconds)
    return pending


def stop_all(
    sfn: Any,
    sagemaker: Any,
    state_machine_arn: str,
    reason: str,
    deadline: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Job]:
    """Stop every running execution and its jobs, then wait for the jobs; returns the jobs still stopping."""
    jobs: list[Job] = []
    for execution in running_executions(sfn, state_machine_arn):
        stopped = stop_execution_and_jobs(sfn, sagemaker, execution, reason)
        _log("stopped", execution=execution["executionArn"], jobs=[job.name for job in stopped])
        jobs += stopped
    left = wait_until_stopped(sagemaker, jobs, deadline, clock=clock, sleep=sleep)
    if left:
        # They stop on their own (SageMaker never leaves a job in Stopping); deletion need not wait any longer.
        _log("still stopping at the deadline", jobs=[job.name for job in left])
    return left


def on_event(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Provider framework entry point. A failure on Delete fails the stack deletion with the error, which is what
    we want: a job left running would bill for hours."""
    properties = event.get("ResourceProperties", {})
    state_machine_arn = str(properties["StateMachineArn"])
    physical_id = str(event.get("PhysicalResourceId") or f"{state_machine_arn}/stop-on-delete")
    _log("event", request=event["RequestType"], state_machine=state_machine_arn)
    if event["RequestType"] == "Delete":
        remaining_s = context.get_remaining_time_in_millis() / 1000.0 if context is not None else 600.0
        stop_all(
            boto3.client("stepfunctions"),
            boto3.client("sagemaker"),
            state_machine_arn,
            reason="The training stack is being deleted.",
            deadline=time.monotonic() + remaining_s - RESPONSE_RESERVE_S,
        )
    return {"PhysicalResourceId": physical_id}
