"""Executing the training pipeline's state machine on this machine: a real ASL interpreter with real JSONata.

What is real (their own implementations, pinned):

* the Amazon States Language interpreter: moto 5.2.5's (a port of LocalStack's), run in-process with
  `mock_aws(config={"stepfunctions": {"execute_state_machine": True}})`: parsing, Pass/Task/Choice/Wait/Fail,
  `Assign` and variables, `$states`, Retry (matching, attempts, backoff, jitter) and Catch, the execution history;
* moto's SNS publish and Lambda invoke integrations and its aws-sdk integration (FindBestTrainingJob), against
  moto's backends, which also hold S3, SNS, Lambda functions and SageMaker jobs;
* JSONata: the `jsonata` 2.0.6 JavaScript engine (the release Step Functions documents; pinned in package.json),
  run by the virtualenv's Node.js 24 in one long-lived child process;
* botocore's service models: every SageMaker request is sent by a boto3 client with parameter validation on, and
  API errors are classified by the operation's modelled error shapes.

What is stood in, because the interpreter lacks it (each the smallest piece that makes an execution faithful):

* JSONata evaluation: moto wires in no evaluator (its `_eval_jsonata` is None). `JsonataEngine` evaluates the
  expressions moto composes, unchanged, in the node child.
* `$hash`: Step Functions adds it to JSONata (MD5, SHA-1, SHA-256, SHA-384, SHA-512, hexadecimal); moto declares a
  placeholder that returns a string. The node child defines it with node's crypto, over the UTF-8 bytes.
* String variables: moto writes them into the composed expression between double quotes without escaping, so a
  value holding `"` or `\\` breaks the expression; they are written as JSON strings instead.
* SageMaker's optimized integration with `.sync` (createTrainingJob, createHyperParameterTuningJob): moto only
  forwards the call. `SageMakerSync` sends the request through boto3 to moto's SageMaker backend, waits for the
  job as Step Functions does and reports as Step Functions does: a job that ends Failed or Stopped as
  `States.TaskFailed` with the job's description (JSON, cut at the 32,768 characters of a cause) as the cause; an
  API error as `SageMaker.<modelled error shape>Exception` for the shapes botocore models for the operation,
  `SageMaker.AmazonSageMakerException` for the rest (throttling included; DESIGN.md §6).
* SageMaker's jobs: moto's are Completed the moment they are created, and its training jobs reuse names freely.
  `SageMaker` gives each job a life: created InProgress, then the outcome a test scripts (`JobOutcome`) or that a
  `JobRunner` (the rehearsal's training container) produces; a second job of the same name is refused with
  ResourceInUse (in the region of the first); scripted API errors (throttling, account limits, 5xx) are returned by
  botocore's own error path, and one marked `created` makes the job first, as a create that timed out or failed on
  its way back would have. Such a job, which no `.sync` task waits for, runs until as many Wait states as its
  outcome says (one, unless told otherwise) have passed, then ends with that outcome.
* SageMaker's training platform, for `make rehearse`: `TrainingContainer` runs a CreateTrainingJob request's script
  on this machine with the environment and arguments the SageMaker training toolkit would give it.
* Lambda's runtime: moto runs functions in Docker, which these machines lack. `LambdaRuntime` calls the function's
  Python handler in-process, with the function's environment variables, and answers as Lambda's Python runtime
  does (a raised exception is a function error whose `errorType` names the exception).
* Time: Wait states and Retry intervals are recorded in `Clock`, not slept (a Wait state is the time in which the
  jobs above run).

Left as moto has it: its refusal of a bare `$` anywhere in an expression (Step Functions forbids it only at the top
level; the definition uses none, so moto's stricter rule costs nothing and would fail an execution that used one),
and its `$parse`, JSONata's `$eval`, which reads JSON text as Step Functions' `$parse` does (the definition parses
only a JSON string literal with it).

Not stood in, so not covered: Step Functions' static checks of a definition beyond moto's, IAM, quotas and payload
limits other than moto's, and the error name of an expression the engine cannot evaluate (moto reports
`States.Runtime` where Step Functions says `States.QueryEvaluationError`; an expression that yields nothing is
`States.QueryEvaluationError` in both).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import json
import math
import os
import subprocess
import sys
import threading
import time
import traceback
import uuid
import zipfile
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace, TracebackType
from typing import Any
from unittest import mock

import boto3
import botocore.session
from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import ClientError, ParamValidationError
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
    StateTaskServiceCallback,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_factory import (
    state_task_service_for as original_for,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

from config import Settings
from fakes.moto_server import ACCESS_KEY, ACCOUNT, REGION, SECRET_KEY, list_keys
from stacks.constructs.training_definition import PipelineSpec
from stacks.images import training_image

ROOT = Path(__file__).resolve().parents[1]
JSONATA_VERSION = "2.0.6"
MIN_NODE_MAJOR = 22  # package.json's engines; the virtualenv brings 24

# The node side of the engine: one JSON request per line in, one JSON reply per line out, in order.
_ENGINE_JS = r"""
'use strict';
const path = require('node:path');
const readline = require('node:readline');
const crypto = require('node:crypto');
const root = process.argv[1];
const jsonata = require(path.join(root, 'node_modules', 'jsonata'));
const version = require(path.join(root, 'node_modules', 'jsonata', 'package.json')).version;
// Step Functions' $hash: the algorithms it documents, hexadecimal digest of the UTF-8 bytes.
const ALGORITHMS = {'MD5': 'md5', 'SHA-1': 'sha1', 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512'};
function hash(value, algorithm) {
  if (!(algorithm in ALGORITHMS)) {
    throw {code: 'D3141', message: 'Unsupported hashing algorithm: ' + algorithm};
  }
  return crypto.createHash(ALGORITHMS[algorithm]).update(String(value), 'utf8').digest('hex');
}
process.stdout.write(JSON.stringify({ready: true, jsonata: version, node: process.version}) + '\n');
let queue = Promise.resolve();
readline.createInterface({input: process.stdin}).on('line', (line) => {
  queue = queue.then(async () => {
    let reply;
    try {
      const expression = jsonata(JSON.parse(line).expression);
      expression.registerFunction('hash', hash, '<ss:s>');
      const value = await expression.evaluate(undefined);
      reply = value === undefined ? {undefined: true} : {value: value};
    } catch (error) {
      reply = {error: {code: error.code || 'Error', message: String(error.message || error)}};
    }
    process.stdout.write(JSON.stringify(reply) + '\n');
  });
});
"""


class JsonataError(Exception):
    """An expression the engine could not evaluate (its error code and message)."""

    def __init__(self, code: str, message: str, expression: str) -> None:
        super().__init__(f"{code}: {message} (in {expression[:300]})")
        self.code = code


class JsonataEngine:
    """The `jsonata` JavaScript engine in one node child for the whole session (a node process per expression costs
    ~65 ms here, an evaluation in the child ~0.2 ms). Thread-safe: moto evaluates states in worker threads."""

    def __init__(self, node: Path | None = None, root: Path = ROOT) -> None:
        self.node = node or Path(sys.executable).parent / "node"
        self.root = root
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def start(self) -> JsonataEngine:
        if not self.node.exists():
            raise RuntimeError(f"no Node.js at {self.node}: run `make setup` (the virtualenv brings Node 24)")
        if not (self.root / "node_modules" / "jsonata" / "package.json").exists():
            raise RuntimeError(f"no jsonata in {self.root / 'node_modules'}: run `make setup` (package-lock.json)")
        self._process = subprocess.Popen(
            [str(self.node), "-e", _ENGINE_JS, str(self.root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        hello = json.loads(self._read_line())
        if hello.get("jsonata") != JSONATA_VERSION:
            self.stop()
            raise RuntimeError(
                f"node_modules has jsonata {hello.get('jsonata')}, expected {JSONATA_VERSION}: run `make setup`"
            )
        self.versions = {"jsonata": hello["jsonata"], "node": hello["node"]}
        if int(hello["node"].lstrip("v").split(".")[0]) < MIN_NODE_MAJOR:
            self.stop()
            raise RuntimeError(
                f"{self.node} is Node.js {hello['node']}, expected {MIN_NODE_MAJOR} or newer: run `make setup`"
            )
        return self

    def _read_line(self) -> str:
        assert self._process is not None and self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the JSONata engine ({self.node}) exited with status {self._process.poll()}")
        return line

    def evaluate(self, expression: str) -> Any:
        """The value of `expression` (None for JSONata's undefined, as moto expects); raises JsonataError."""
        with self._lock:
            if self._process is None or self._process.stdin is None:
                raise RuntimeError("the JSONata engine is not running (use it inside `with JsonataEngine()`)")
            self._process.stdin.write(json.dumps({"expression": expression}) + "\n")
            self._process.stdin.flush()
            reply = json.loads(self._read_line())
        if "error" in reply:
            raise JsonataError(reply["error"]["code"], reply["error"]["message"], expression)
        return None if reply.get("undefined") else reply["value"]

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None and process.stdout is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()

    def __enter__(self) -> JsonataEngine:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# ---------------------------------------------------------------- time


@dataclass
class Clock:
    """Waits the interpreter would sleep: Wait states' seconds and Retry intervals, in order."""

    waits: list[int] = field(default_factory=list)
    retry_intervals: list[float] = field(default_factory=list)

    def clear(self) -> None:
        self.waits.clear()
        self.retry_intervals.clear()


# ---------------------------------------------------------------- SageMaker


TERMINAL_STATUSES = ("Completed", "Failed", "Stopped")
# The history's cause fields hold at most 32,768 characters (Step Functions' API reference, TaskFailedEventDetails);
# a longer job description is cut there. That the service cuts it, rather than failing the task another way, is
# assumed: what it does is not documented.
CAUSE_CHARS = 32768
CREATE_OPERATIONS = ("CreateTrainingJob", "CreateHyperParameterTuningJob")


@dataclass(frozen=True)
class JobOutcome:
    """How a job ends: its status, FailureReason and secondary status transitions (status, message)."""

    status: str = "Completed"
    failure_reason: str | None = None
    transitions: tuple[tuple[str, str], ...] = (
        ("Starting", "Preparing the instances for training"),
        ("Downloading", "Downloading input data"),
        ("Training", "Training image download completed. Training in progress."),
        ("Uploading", "Uploading generated training model"),
        ("Completed", "Training job completed"),
    )
    # Tuning jobs: the best training job's number (its name is `<tuning job>-NNN-<8 hex>`) and objective value.
    best_job_number: int = 1
    best_objective: float = 1.5
    # A job that no `.sync` task waits for (its create call answered an error after making it) ends when this many
    # Wait states have passed since it was created.
    waits: int = 1

    @classmethod
    def failed(cls, failure_reason: str, transitions: tuple[tuple[str, str], ...]) -> JobOutcome:
        return cls(status="Failed", failure_reason=failure_reason, transitions=transitions)


def capacity_failure() -> JobOutcome:
    """What SageMaker reports when the instances could not be had."""
    return JobOutcome.failed(
        "CapacityError: Unable to provision requested ML compute capacity. Please retry using a different ML "
        "instance type.",
        (("Starting", "Starting the training job"), ("Failed", "Insufficient capacity error: Unable to provision")),
    )


@dataclass(frozen=True)
class ApiError:
    """An error SageMaker's API answers instead of doing the call."""

    code: str
    message: str
    status: int = 400
    # The service made the job before it answered the error (a 5xx or a timeout after the create went through).
    created: bool = False

    @classmethod
    def throttling(cls) -> ApiError:
        return cls("ThrottlingException", "Rate exceeded")

    @classmethod
    def internal_failure(cls, *, created: bool = False) -> ApiError:
        return cls("InternalFailure", "We encountered an internal error. Please try again.", 500, created)

    @classmethod
    def throttling_after_create(cls) -> ApiError:
        """Throttling answered although the job was made: e.g. a create that timed out after it went through, whose
        repetition by the integration's own HTTP retries was throttled (not observed; scripted by the tests)."""
        return cls("ThrottlingException", "Rate exceeded", 400, created=True)

    @classmethod
    def resource_limit(cls) -> ApiError:
        return cls(
            "ResourceLimitExceeded",
            "The account-level service limit 'ml.p3dn.24xlarge for training job usage' is 0 Instances, with current "
            "utilization of 0 Instances and a request delta of 1 Instances.",
        )


JobRunner = Callable[[str, Mapping[str, Any]], JobOutcome]
"""Runs a training job from its CreateTrainingJob request (name, request) and says how it ended."""


@dataclass
class _UnwatchedJob:
    """A job made by a create call that answered an error: no `.sync` task waits for it."""

    request: dict[str, Any]
    outcome: JobOutcome
    waits_left: int


@dataclass
class SageMaker:
    """What SageMaker does that moto's backend does not: the life of a job and the API's refusals."""

    # Outcomes of the next jobs, in creation order; a job beyond them completes (or runs `runner`).
    outcomes: deque[JobOutcome] = field(default_factory=deque)
    # API errors for the next calls of an operation (e.g. "CreateTrainingJob"); `always` answers every call.
    api_errors: dict[str, deque[ApiError]] = field(default_factory=dict)
    always: dict[str, ApiError] = field(default_factory=dict)
    runner: JobRunner | None = None
    # Every call botocore validated and sent, refused ones included: (operation, request).
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    # Jobs made by a create call that answered an error, by (operation, name, region).
    unwatched: dict[tuple[str, str, str], _UnwatchedJob] = field(default_factory=dict)

    _clients: dict[str, Any] = field(default_factory=dict)
    _plain_clients: dict[str, Any] = field(default_factory=dict)

    def clear(self) -> None:
        self.outcomes.clear()
        self.api_errors.clear()
        self.always.clear()
        self.calls.clear()
        self.unwatched.clear()

    def forget_clients(self) -> None:
        self._clients.clear()
        self._plain_clients.clear()

    def client(self, region: str) -> Any:
        """The integration's client (one per region: making a client costs more than a call)."""
        if region not in self._clients:
            client = sagemaker_client(region)

            def refuse(model: Any, params: Mapping[str, Any], **_: Any) -> Any:
                return self.refuse(model, params, region)

            client.meta.events.register_first("before-call.sagemaker.*", refuse)
            self._clients[region] = client
        return self._clients[region]

    def refuse(self, model: Any, params: Mapping[str, Any], region: str) -> Any:
        """Called by botocore after it validated the request: SageMaker's refusals, through botocore's own error
        path (the error class and code it would parse from the service's answer)."""
        body = params.get("body") or b"{}"  # serialized by botocore for SageMaker's JSON protocol
        request = json.loads(body)
        self.calls.append((model.name, request))
        error = self.api_error_for(model.name, request, region)
        if error is None:
            return None
        if error.created and model.name in CREATE_OPERATIONS:
            self._create_unwatched(model.name, request, region)
        http = SimpleNamespace(status_code=error.status, headers={}, content=b"")
        metadata = {"HTTPStatusCode": error.status, "RequestId": str(uuid.uuid4())}
        return http, {"Error": {"Code": error.code, "Message": error.message}, "ResponseMetadata": metadata}

    def fail_next(self, operation: str, *errors: ApiError) -> None:
        self.api_errors.setdefault(operation, deque()).extend(errors)

    def api_error_for(self, operation: str, request: Mapping[str, Any], region: str) -> ApiError | None:
        if operation in self.always:
            return self.always[operation]
        queued = self.api_errors.get(operation)
        if queued:
            return queued.popleft()
        name = request.get("TrainingJobName") or request.get("HyperParameterTuningJobName")
        if operation in CREATE_OPERATIONS and name is not None and self._exists(operation, str(name), region):
            kind = "Training job" if operation == "CreateTrainingJob" else "Hyper parameter tuning job"
            return ApiError("ResourceInUse", f"{kind} names must be unique within an AWS account and region, and a "
                            f"{kind.lower()} with this name already exists ({name})")  # fmt: skip
        return None

    @staticmethod
    def backend(region: str = REGION) -> Any:
        from moto.sagemaker.models import sagemaker_backends

        return sagemaker_backends[ACCOUNT][region]

    def _exists(self, operation: str, name: str, region: str) -> bool:
        backend = self.backend(region)
        jobs = backend.training_jobs if operation == "CreateTrainingJob" else backend.hyper_parameter_tuning_jobs
        return name in jobs

    def _create_unwatched(self, operation: str, request: dict[str, Any], region: str) -> None:
        """The job the call made before its error, created in moto (by a client without these refusals)."""
        if region not in self._plain_clients:
            self._plain_clients[region] = sagemaker_client(region)
        getattr(self._plain_clients[region], xform_name(operation))(**request)
        name = str(request.get("TrainingJobName") or request["HyperParameterTuningJobName"])
        self.start_job(operation, name, region)
        outcome = self.next_outcome(name, request, operation)
        self.unwatched[(operation, name, region)] = _UnwatchedJob(request, outcome, outcome.waits)

    def time_passes(self) -> None:
        """A Wait state passed: the unwatched jobs whose time has come end with their outcome."""
        for (operation, name, region), job in list(self.unwatched.items()):
            job.waits_left -= 1
            if job.waits_left <= 0:
                del self.unwatched[(operation, name, region)]
                self.end_job(operation, name, job.request, region, job.outcome)

    def next_outcome(self, name: str, request: Mapping[str, Any], operation: str) -> JobOutcome:
        if self.outcomes:
            return self.outcomes.popleft()
        if self.runner is not None and operation == "CreateTrainingJob":
            return self.runner(name, request)
        return JobOutcome()

    def start_job(self, operation: str, name: str, region: str) -> None:
        """A created job is InProgress until it is waited for (moto would report it Completed at once)."""
        backend = self.backend(region)
        if operation == "CreateTrainingJob":
            job = backend.training_jobs[name]
            job.training_job_status, job.secondary_status = "InProgress", "Starting"
        else:
            backend.hyper_parameter_tuning_jobs[name].hyper_parameter_tuning_job_status = "InProgress"

    def finish_job(self, operation: str, name: str, request: Mapping[str, Any], region: str) -> None:
        """A job a `.sync` task waits for ends with the next outcome."""
        self.end_job(operation, name, request, region, self.next_outcome(name, request, operation))

    def end_job(self, operation: str, name: str, request: Mapping[str, Any], region: str, outcome: JobOutcome) -> None:
        backend = self.backend(region)
        if operation == "CreateTrainingJob":
            job = backend.training_jobs[name]
            job.training_job_status = outcome.status
            job.secondary_status = outcome.transitions[-1][0] if outcome.transitions else outcome.status
            job.failure_reason = outcome.failure_reason
            job.secondary_status_transitions = [
                {"Status": status, "StartTime": job.creation_time, "StatusMessage": message}
                for status, message in outcome.transitions
            ]
            # CompressionType NONE: the model is the folder <S3OutputPath><job>/output/model/.
            output = str(request["OutputDataConfig"]["S3OutputPath"]).rstrip("/")
            job.model_artifacts = {"S3ModelArtifacts": f"{output}/{name}/output/model/"}
            job.final_metric_data_list = []
            return
        tuning = backend.hyper_parameter_tuning_jobs[name]
        tuning.hyper_parameter_tuning_job_status = outcome.status
        tuning.failure_reason = outcome.failure_reason or ""
        completed = (
            0
            if outcome.status == "Failed"
            else request["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"]
        )
        tuning.training_job_status_counters = {
            "Completed": completed,
            "InProgress": 0,
            "RetryableError": 0,
            "NonRetryableError": 0 if completed else 1,
            "Stopped": 0,
        }
        best_name = f"{name}-{outcome.best_job_number:03d}-{uuid.uuid5(uuid.NAMESPACE_DNS, name).hex[:8]}"
        best = {
            "TrainingJobName": best_name,
            "TrainingJobArn": f"arn:aws:sagemaker:{region}:{ACCOUNT}:training-job/{best_name}",
            "TuningJobName": name,
            "CreationTime": tuning.creation_time,
            "TrainingJobStatus": "Completed",
            "TunedHyperParameters": tuned_hyperparameters(request["HyperParameterTuningJobConfig"]["ParameterRanges"]),
            "FinalHyperParameterTuningJobObjectiveMetric": {
                "Type": "Minimize",
                "MetricName": request["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"][
                    "MetricName"
                ],
                "Value": outcome.best_objective,
            },
            "ObjectiveStatus": "Succeeded",
        }
        tuning.best_training_job = best if completed else None
        tuning.OverallBestTrainingJob = best if completed else None


def tuned_hyperparameters(ranges: Mapping[str, Any]) -> dict[str, str]:
    """A value inside each of a tuning request's ranges, as a tuning job reports its best training job's: the middle
    of a continuous or integer range (on its scale), a categorical range's first value."""
    tuned: dict[str, str] = {}
    for kind in ("ContinuousParameterRanges", "IntegerParameterRanges"):
        for item in ranges.get(kind, []):
            low, high = float(item["MinValue"]), float(item["MaxValue"])
            middle = math.sqrt(low * high) if item.get("ScalingType") == "Logarithmic" else (low + high) / 2
            tuned[item["Name"]] = str(middle if kind == "ContinuousParameterRanges" else round(middle))
    for item in ranges.get("CategoricalParameterRanges", []):
        tuned[item["Name"]] = str(item["Values"][0])
    return tuned


# The SageMaker training toolkit's own hyperparameters (aws/sagemaker-training-toolkit, src/sagemaker_training/
# params.py SAGEMAKER_HYPERPARAMETERS, besides every name starting with `sagemaker_`): never the script's arguments.
TOOLKIT_HYPERPARAMETERS = frozenset({"_tuning_objective_metric", "default_user_module_name"})


def toolkit_hyperparameters(hyperparameters: Mapping[str, str]) -> dict[str, Any]:
    """The script's hyperparameters as the toolkit reads them (environment.py `read_hyperparameters` and `Env`): each
    value JSON-decoded where it is JSON (`"3"` is 3, `"2E-5"` 2e-05, `"true"` True), else kept as the string; its own
    ones left out."""
    decoded: dict[str, Any] = {}
    for name, value in hyperparameters.items():
        if name.startswith("sagemaker_") or name in TOOLKIT_HYPERPARAMETERS:
            continue
        try:
            decoded[name] = json.loads(value)
        except ValueError:
            decoded[name] = value
    return decoded


def toolkit_arguments(hyperparameters: Mapping[str, Any]) -> list[str]:
    """The command line the toolkit gives the script (mapping.py `to_cmd_args`): the names sorted, `--name` (`-n` for
    a one-letter name), the value as `str()` writes it (so True is `True`, 2e-05 `2e-05`), a mapping as
    `key=value,...` sorted, None as ''."""

    def value_of(value: Any) -> str:
        if isinstance(value, Mapping):
            return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
        return "" if value is None else str(value)

    return [
        item
        for name in sorted(hyperparameters)
        for item in (f"--{name}" if len(name) > 1 else f"-{name}", value_of(hyperparameters[name]))
    ]


def _toolkit_json(value: Any) -> str:
    # mapping.py `to_env_vars`: what is not a string is written as sorted, compact, ASCII JSON.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@dataclass
class TrainingContainer:
    """SageMaker's training platform for one CreateTrainingJob request, on this machine (a `JobRunner`): what the
    job's instance and the SageMaker training toolkit do, from the request alone.

    * `/opt/ml` is a folder under `root`; every hyperparameter value naming a path under `/opt/ml` is re-rooted there.
    * Each channel (`S3Prefix`, File mode) is downloaded from S3 into `input/data/<channel>/`, keys relative to the
      prefix; `sagemaker_submit_directory` (a tar.gz in S3) is extracted into `code/`.
    * The entry point `sagemaker_program` runs from `code/` with the toolkit's environment (SM_CHANNEL_<NAME>,
      SM_CHANNELS, SM_HPS, SM_MODEL_DIR, SM_OUTPUT_DATA_DIR, SM_HOSTS, SM_CURRENT_HOST, SM_NUM_GPUS=0,
      SM_HP_<NAME>, TRAINING_JOB_NAME) and the toolkit's arguments (`toolkit_arguments`), so an argument the script
      does not accept fails the job as it would on SageMaker.
    * Exit 0: `model/` is uploaded to `<S3OutputPath><job>/output/model/` (CompressionType NONE) and the job is
      Completed; otherwise it Failed with `AlgorithmError: ExecuteUserScriptError: ...` and the log's last lines.

    Not done: torchrun (`sagemaker_torch_distributed_enabled`; one CPU process needs none), installing
    requirements.txt (the virtualenv has them), metrics, checkpoint sync to S3, spot interruptions, time limits.
    `extra_env` is what the instance would have beyond the request (the rehearsal's offline Hub cache).
    """

    root: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, job: str, request: Mapping[str, Any]) -> JobOutcome:
        import tarfile

        s3 = _moto_client("s3")
        opt_ml = self.root / job / "opt" / "ml"
        hyperparameters = {str(k): str(v) for k, v in request.get("HyperParameters", {}).items()}
        channels: dict[str, Path] = {}
        for channel in request.get("InputDataConfig", []):
            folder = opt_ml / "input" / "data" / channel["ChannelName"]
            folder.mkdir(parents=True)
            download_prefix(s3, channel["DataSource"]["S3DataSource"]["S3Uri"], folder)
            channels[channel["ChannelName"]] = folder
        code = opt_ml / "code"
        code.mkdir(parents=True)
        bucket, key = _split_s3_uri(hyperparameters["sagemaker_submit_directory"])
        with tarfile.open(fileobj=s3.get_object(Bucket=bucket, Key=key)["Body"], mode="r|gz") as tar:
            tar.extractall(code, filter="data")
        user = {
            name: value.replace("/opt/ml", str(opt_ml)) if isinstance(value, str) else value
            for name, value in toolkit_hyperparameters(hyperparameters).items()
        }
        argv = toolkit_arguments(user)
        model_dir, output_dir = opt_ml / "model", opt_ml / "output" / "data"
        model_dir.mkdir(parents=True)
        output_dir.mkdir(parents=True)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SM_", "AWS_"))},
            **{f"SM_CHANNEL_{name.upper()}": str(path) for name, path in channels.items()},
            "SM_CHANNELS": json.dumps(sorted(channels)),
            "SM_HPS": _toolkit_json(user),
            "SM_USER_ARGS": _toolkit_json(argv),
            **{f"SM_HP_{name.upper()}": v if isinstance(v, str) else _toolkit_json(v) for name, v in user.items()},
            "SM_MODEL_DIR": str(model_dir),
            "SM_OUTPUT_DATA_DIR": str(output_dir),
            "SM_HOSTS": json.dumps(["algo-1"]),
            "SM_CURRENT_HOST": "algo-1",
            "SM_NUM_GPUS": "0",
            "TRAINING_JOB_NAME": job,
            **self.extra_env,
        }
        command = [sys.executable, str(code / hyperparameters["sagemaker_program"]), *argv]
        result = subprocess.run(command, cwd=code, env=env, capture_output=True, text=True, check=False)
        log = result.stdout + result.stderr
        self.runs.append({"job": job, "argv": argv, "env": env, "returncode": result.returncode, "log": log})
        if result.returncode != 0:
            tail = " ".join(log.strip().splitlines()[-3:])[-600:]
            return JobOutcome.failed(
                f'AlgorithmError: ExecuteUserScriptError: ExitCode {result.returncode} ErrorMessage "{tail}"',
                (("Starting", "Launching requested ML instances"), ("Training", "Training in progress."),
                 ("Failed", "Training job failed")),
            )  # fmt: skip
        bucket, prefix = _split_s3_uri(str(request["OutputDataConfig"]["S3OutputPath"]))
        for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
            key = f"{prefix.rstrip('/')}/{job}/output/model/{path.relative_to(model_dir).as_posix()}".lstrip("/")
            s3.upload_file(str(path), bucket, key)
        return JobOutcome()


def download_prefix(s3: Any, uri: str, folder: Path) -> list[str]:
    """Every object under an `s3://` prefix into `folder`, at its key relative to the prefix (as SageMaker lays out
    a File mode channel, and as a model server fetches a model folder); returns the keys."""
    bucket, prefix = _split_s3_uri(uri)
    keys = list_keys(s3, bucket, prefix)
    for key in keys:
        target = folder / key[len(prefix) :].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(target))
    return keys


def _split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"expected an s3:// URI, got {uri!r}")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


# SageMaker's optimized integrations that this file runs, by the resource's API action.
SAGEMAKER_SYNC_OPERATIONS = {
    "createTrainingJob": ("CreateTrainingJob", "DescribeTrainingJob", "TrainingJobName", "TrainingJobStatus"),
    "createHyperParameterTuningJob": (
        "CreateHyperParameterTuningJob",
        "DescribeHyperParameterTuningJob",
        "HyperParameterTuningJobName",
        "HyperParameterTuningJobStatus",
    ),
}


def sagemaker_error_name(operation_model: Any, code: str) -> str:
    """Step Functions' name for a SageMaker API error: the modelled shape (with `Exception`), else the generic one."""
    modelled = {shape.name for shape in operation_model.error_shapes}
    if code in modelled:
        return f"SageMaker.{code}" if code.endswith("Exception") else f"SageMaker.{code}Exception"
    return "SageMaker.AmazonSageMakerException"


@functools.cache
def _sagemaker_model() -> Any:
    """botocore's model of SageMaker's API (its operations and their error shapes do not depend on the region)."""
    return botocore.session.get_session().get_service_model("sagemaker")


def _moto_client(service: str, region: str = REGION, config: Config | None = None) -> Any:
    """A client of moto's in-process backends (they answer it inside `mock_aws`)."""
    return boto3.client(
        service, region_name=region, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, config=config
    )


def sagemaker_client(region: str = REGION) -> Any:
    """A client that validates every request against botocore's model and tries each call once."""
    return _moto_client("sagemaker", region, Config(parameter_validation=True, retries={"total_max_attempts": 1}))


class SageMakerSync(StateTaskServiceCallback):
    """`arn:aws:states:::sagemaker:createTrainingJob.sync` (and the tuning job's), as Step Functions runs it."""

    def __init__(self, sagemaker: SageMaker) -> None:
        # moto's callback base needs a task-token endpoint even for `.sync` (it interrupts it when the task ends).
        patterns: Any = {
            ResourceCondition.WaitForTaskToken,
            ResourceCondition.Sync,
        }  # str constants, typed as the class
        super().__init__(supported_integration_patterns=patterns)
        self.sagemaker = sagemaker

    def _validate_service_integration_is_supported(self) -> None:
        action, condition = self.resource.api_action, self.resource.condition
        if action not in SAGEMAKER_SYNC_OPERATIONS or condition != ResourceCondition.Sync:
            raise ValueError(f"the stand-in runs SageMaker's create*Job.sync only, not {self.resource.resource_arn}")

    def _client(self, region: str) -> Any:
        return self.sagemaker.client(region)

    def _from_error(self, env: Any, ex: Exception) -> Any:
        if not isinstance(ex, ClientError | ParamValidationError):
            return super()._from_error(env=env, ex=ex)
        if isinstance(ex, ParamValidationError):  # sent anyway, the service would answer ValidationException
            code, message, request_id, status = "ValidationException", str(ex), str(uuid.uuid4()), 400
        else:
            code, message = ex.response["Error"]["Code"], ex.response["Error"]["Message"]
            request_id = ex.response["ResponseMetadata"].get("RequestId", "")
            status = ex.response["ResponseMetadata"].get("HTTPStatusCode", 400)
        operation = SAGEMAKER_SYNC_OPERATIONS[self.resource.api_action][0]
        error = sagemaker_error_name(_sagemaker_model().operation_model(operation), code)
        cause = (
            f"{message} (Service: AmazonSageMaker; Status Code: {status}; Error Code: {code}; "
            f"Request ID: {request_id}; Proxy: null)"
        )
        return self._failure(env, CustomErrorName(error), error, cause)

    def _failure(self, env: Any, error_name: Any, error: str, cause: str) -> FailureEvent:
        return FailureEvent(
            env=env,
            error_name=error_name,
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(  # type: ignore[typeddict-item]  # moto fills in one kind of details
                taskFailedEventDetails=TaskFailedEventDetails(
                    resource=self._get_sfn_resource(),
                    resourceType=self._get_sfn_resource_type(),
                    error=error,
                    cause=cause,
                )
            ),
        )

    def _eval_service_task(
        self, env: Any, resource_runtime_part: Any, normalised_parameters: dict[str, Any], state_credentials: Any
    ) -> None:
        operation, _, name_field, _ = SAGEMAKER_SYNC_OPERATIONS[self.resource.api_action]
        client = self._client(resource_runtime_part.region)
        response = getattr(client, xform_name(operation))(**normalised_parameters)
        response.pop("ResponseMetadata", None)
        self.sagemaker.start_job(operation, normalised_parameters[name_field], resource_runtime_part.region)
        env.stack.append(response)

    def _build_sync_resolver(
        self, env: Any, resource_runtime_part: Any, normalised_parameters: dict[str, Any], state_credentials: Any
    ) -> Callable[[], Any]:
        operation, describe, name_field, status_field = SAGEMAKER_SYNC_OPERATIONS[self.resource.api_action]
        region = resource_runtime_part.region
        name = normalised_parameters[name_field]
        client = self._client(region)
        env.stack.pop()  # the create call's answer: `.sync` answers with the job's description instead

        def resolve() -> Any:
            described = getattr(client, xform_name(describe))(**{name_field: name})
            if described[status_field] not in TERMINAL_STATUSES:
                self.sagemaker.finish_job(operation, name, normalised_parameters, region)
                described = getattr(client, xform_name(describe))(**{name_field: name})
            described.pop("ResponseMetadata", None)
            if described[status_field] == "Completed":
                return described
            failed = StatesErrorNameType.StatesTaskFailed
            raise FailureEventException(
                self._failure(env, StatesErrorName(typ=failed), failed.to_name(), to_json_str(described)[:CAUSE_CHARS])
            )

        return resolve


# ---------------------------------------------------------------- the deployed definition


def pipeline_spec(
    settings: Settings, *, bucket: str, job_role_arn: str, prep_function_arn: str, topic_arn: str, source_s3_uri: str
) -> PipelineSpec:
    """The `PipelineSpec` the training stack would build in this account from `settings` and the resources given:
    the training image is `stacks.images`' for the settings' region, the bucket key a fixed ARN (moto checks none)."""
    return PipelineSpec(
        settings=settings,
        partition="aws",
        bucket_name=bucket,
        key_arn=f"arn:aws:kms:{settings.region}:{ACCOUNT}:key/0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7",
        job_role_arn=job_role_arn,
        prep_function_arn=prep_function_arn,
        topic_arn=topic_arn,
        source_s3_uri=source_s3_uri,
        image_uri=training_image(settings.region).uri,
    )


def create_prep_function(sf: StepFunctions, name: str, role_arn: str, environment: Mapping[str, str]) -> str:
    """The dataset prep function as the dataset stack deploys it (stacks/constructs/dataset_prep.py: its handler,
    memory and timeout), in moto, with `environment` as its variables; returns its ARN. The code package holds a
    placeholder only: `LambdaRuntime` imports the handler from this checkout's lambdas/."""
    from stacks.constructs import dataset_prep

    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as code:
        code.writestr("placeholder.py", "")
    arn: str = sf.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.14",
        Role=role_arn,
        Handler="dataset_prep.handler.handler",
        Code={"ZipFile": package.getvalue()},
        Timeout=int(dataset_prep.TIMEOUT.to_seconds()),
        MemorySize=dataset_prep.MEMORY_MB,
        Environment={"Variables": dict(environment)},
    )["FunctionArn"]
    return arn


# ---------------------------------------------------------------- Lambda


class LambdaContext:
    """The parts of Lambda's context object our handlers read."""

    def __init__(self, function: Any) -> None:
        self.function_name = function.function_name
        self.invoked_function_arn = function.function_arn
        self.memory_limit_in_mb = function.memory_size
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + float(function.timeout)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class LambdaRuntime:
    """Runs a moto Lambda function's Python handler in this process, as Lambda's Python runtime would: the handler
    string (`module.function`) is imported under `code_package` (the function's code root), the environment is the
    function's, and an exception becomes a function error with Lambda's error payload."""

    code_package: str = "lambdas"
    invocations: list[tuple[str, Any]] = field(default_factory=list)

    def invoke(self, function: Any, event: Any) -> tuple[str, bool, str]:
        module_name, _, attribute = str(function.handler).rpartition(".")
        handler = getattr(importlib.import_module(f"{self.code_package}.{module_name}"), attribute)
        self.invocations.append((function.function_name, event))
        environment = {
            **{str(k): str(v) for k, v in (function.environment_vars or {}).items()},
            "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
            "AWS_REGION": function.region,
        }
        context = LambdaContext(function)
        with mock.patch.dict(os.environ, environment):
            try:
                result = handler(event, context)
            except Exception as error:
                payload = {
                    "errorMessage": str(error),
                    "errorType": type(error).__name__,
                    "requestId": context.aws_request_id,
                    "stackTrace": traceback.format_tb(error.__traceback__),
                }
                return json.dumps(payload), True, ""
        return json.dumps(result), False, ""


# ---------------------------------------------------------------- the interpreter


def _json_string_declarations(original: Callable[[dict[str, Any]], str]) -> Callable[[dict[str, Any]], str]:
    """moto's variable declarations, with string values written as JSON strings (valid JSONata literals)."""

    def encode(bindings: dict[str, Any]) -> str:
        return "".join(
            f"{reference}:={json.dumps(value)};" if isinstance(value, str) else original({reference: value})
            for reference, value in bindings.items()
        )

    return encode


@dataclass
class Execution:
    """One finished execution, read back from moto's execution history."""

    name: str
    status: str
    output: Any
    error: str | None
    cause: str | None
    history: list[dict[str, Any]]

    @property
    def states(self) -> list[str]:
        """The states entered, in order."""
        return [e["stateEnteredEventDetails"]["name"] for e in self.history if "stateEnteredEventDetails" in e]

    @property
    def tasks(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Every request a Task state made: (resource type, resource, parameters)."""
        scheduled = [e["taskScheduledEventDetails"] for e in self.history if "taskScheduledEventDetails" in e]
        return [(d["resourceType"], d["resource"], json.loads(d["parameters"])) for d in scheduled]

    def requests(self, resource: str) -> list[dict[str, Any]]:
        return [parameters for _, name, parameters in self.tasks if name == resource]

    def task_errors(self) -> list[str]:
        return [e["taskFailedEventDetails"].get("error", "") for e in self.history if "taskFailedEventDetails" in e]


class StepFunctions:
    """moto's ASL interpreter with the stand-ins above plugged in, inside `mock_aws`; `run` executes a state
    machine to its end. One instance may serve many executions (its backends persist until `stop`)."""

    def __init__(self, engine: JsonataEngine) -> None:
        self.engine = engine
        self.clock = Clock()
        self.sagemaker = SageMaker()
        self.lambdas = LambdaRuntime()
        self._stack = contextlib.ExitStack()
        self._clients: dict[str, Any] = {}

    def start(self) -> StepFunctions:
        try:
            self._plug_in()
        except BaseException:
            self._stack.close()
            raise
        return self

    def _plug_in(self) -> None:
        from moto import mock_aws
        from moto.awslambda.models import LambdaFunction
        from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
        from moto.stepfunctions.parser.asl.component.intrinsic import jsonata as functions
        from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
        from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
        from moto.stepfunctions.parser.asl.eval import states, variable_store
        from moto.stepfunctions.parser.asl.jsonata import jsonata

        enter = self._stack.enter_context
        enter(mock.patch.object(jsonata, "_eval_jsonata", self.engine.evaluate))
        placeholders = {k: v for k, v in functions._DECLARATION_BY_VARIABLE_REFERENCE.items() if k != "$hash"}
        enter(mock.patch.object(functions, "_DECLARATION_BY_VARIABLE_REFERENCE", placeholders))
        encode = _json_string_declarations(jsonata.encode_jsonata_variable_declarations)
        for module in (states, variable_store):
            enter(mock.patch.object(module, "encode_jsonata_variable_declarations", encode))

        sagemaker = self.sagemaker

        def service_for(service_name: str) -> Any:
            return SageMakerSync(sagemaker) if service_name == "sagemaker" else original_for(service_name=service_name)

        enter(mock.patch.object(state_task_factory, "state_task_service_for", service_for))

        runtime = self.lambdas

        def invoke_lambda(function: Any, event: Any = None) -> tuple[str, bool, str]:
            return runtime.invoke(function, event if event is not None else {})

        enter(mock.patch.object(LambdaFunction, "_invoke_lambda", invoke_lambda))

        clock = self.clock

        def record_wait(_wait: Any, env: Any, wait_seconds: int) -> None:
            clock.waits.append(wait_seconds)
            sagemaker.time_passes()

        enter(mock.patch.object(WaitFunction, "_wait_interval", record_wait))
        enter(mock.patch.object(retrier_decl, "time", SimpleNamespace(sleep=clock.retry_intervals.append)))
        enter(mock_aws(config={"stepfunctions": {"execute_state_machine": True}}))

    def stop(self) -> None:
        self._clients.clear()
        self.sagemaker.forget_clients()  # they reach moto only while mock_aws runs
        self._stack.close()

    def __enter__(self) -> StepFunctions:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def client(self, service: str) -> Any:
        """A client of moto's in-process backends (kept: making one costs more than a call)."""
        if service not in self._clients:
            self._clients[service] = _moto_client(service)
        return self._clients[service]

    def create_state_machine(self, definition: Mapping[str, Any] | str, name: str = "pipeline") -> str:
        text = definition if isinstance(definition, str) else json.dumps(definition)
        arn: str = self.client("stepfunctions").create_state_machine(
            name=f"{name}-{uuid.uuid4().hex[:8]}",
            definition=text,
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/pipeline",
        )["stateMachineArn"]
        return arn

    def run(
        self, state_machine_arn: str, execution_input: Any = None, name: str | None = None, timeout: float = 120
    ) -> Execution:
        """Start an execution and wait for its end (`timeout` only guards against a hang)."""
        sfn = self.client("stepfunctions")
        name = name or f"run-{uuid.uuid4().hex[:12]}"
        text = json.dumps({} if execution_input is None else execution_input)
        arn = sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=text)["executionArn"]
        deadline = time.monotonic() + timeout
        # Each poll is an API call that takes the interpreter's thread's GIL: poll often at first, then less.
        delay = 0.002
        while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            if time.monotonic() > deadline:
                raise TimeoutError(f"the execution {name} still runs after {timeout} s")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        events = [
            event
            for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
            for event in page["events"]
        ]
        output = described.get("output")
        return Execution(
            name=name,
            status=described["status"],
            output=json.loads(output) if output is not None else None,
            error=described.get("error"),
            cause=described.get("cause"),
            history=events,
        )


@contextlib.contextmanager
def step_functions() -> Iterator[StepFunctions]:
    """A JSONata engine and the interpreter, started and stopped together."""
    with JsonataEngine() as engine, StepFunctions(engine) as interpreter:
        yield interpreter
