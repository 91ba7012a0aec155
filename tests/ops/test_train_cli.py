"""`make train` (ops/train.py) against moto on loopback: CloudFormation outputs, Step Functions executions and
SageMaker jobs; the run's progress is played by advancing moto's state between polls. SageMaker's stop calls,
which moto lacks, go through botocore's Stubber."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto.backends import get_backend
from moto.core.utils import utcnow

from config import Settings
from fakes.aws_standin import Quota, StandInServer
from fakes.moto_server import ACCOUNT, REGION, MotoServer
from ops import train
from ops.preflight import TRAINING_LOG_GROUP
from tests.ops.loopback import default_quotas
from tests.stop_executions import sagemaker_stubs as stubs
from tests.synth import Assembly

DEFINITION = json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "End": True}}})
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/states"
P4D_TRAINING = Quota("sagemaker", "L-2B3C4D5E", "ml.p4d.24xlarge for training job usage", 1)


@dataclass
class Aws:
    """moto on loopback, and the stand-in for Service Quotas (the preflight's), with SageMaker quotas a default run
    can use; `client(service, region)` as MotoServer's."""

    moto: MotoServer
    standin: StandInServer

    def client(self, service: str, region: str = REGION) -> Any:
        if service == "service-quotas":
            return _quotas_client(self.standin.url, region)
        return self.moto.client(service, region)


@functools.cache
def _quotas_client(url: str, region: str) -> Any:
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region)
    return session.client("service-quotas", endpoint_url=url)


@pytest.fixture
def moto_server(loopback_servers: tuple[MotoServer, StandInServer]) -> Aws:
    moto, standin = loopback_servers
    default_quotas(standin.reset())
    return Aws(moto, standin)


@pytest.fixture
def stack(moto_server: Aws) -> Iterator[tuple[str, str]]:
    """A deployed-looking training stack (a unique name per test) and its state machine's ARN."""
    sfn = moto_server.client("stepfunctions")
    machine = sfn.create_state_machine(name=f"pipeline-{uuid.uuid4().hex[:8]}", definition=DEFINITION, roleArn=ROLE_ARN)
    name = f"LegalGptjTraining{uuid.uuid4().hex[:6]}"
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {
            "StateMachineArn": {"Value": machine["stateMachineArn"]},
            "JobKind": {"Value": "training"},
            "JobNamePrefix": {"Value": "legal-gptj-"},
        },
    }
    moto_server.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))
    logs = moto_server.client("logs")
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=TRAINING_LOG_GROUP)  # SageMaker's, in any account that trained
    yield name, machine["stateMachineArn"]


def factory(moto_server: Aws, region: str = REGION, **overrides: Any) -> train.ClientFactory:
    def clients(service: str, asked: str) -> Any:
        assert asked == region
        return overrides.get(service) or moto_server.client(service, region)

    return clients


def backend(service: str) -> Any:
    return get_backend(service)[ACCOUNT][REGION]  # type: ignore[index]


def execution_of(state_machine: str) -> Any:
    (execution,) = [e for m in backend("stepfunctions").state_machines if m.arn == state_machine for e in m.executions]
    return execution


def create_job(moto_server: Aws, name: str) -> None:
    moto_server.client("sagemaker").create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": "image", "TrainingInputMode": "File"},
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/job",
        OutputDataConfig={"S3OutputPath": "s3://bucket/models/"},
        ResourceConfig={"InstanceType": "ml.p3dn.24xlarge", "InstanceCount": 1, "VolumeSizeInGB": 500},
        StoppingCondition={"MaxRuntimeInSeconds": 36000},
    )


class Scenario:
    """Plays a run between polls: each sleep applies the next step to moto's state."""

    def __init__(self, steps: list[Callable[[], None]]) -> None:
        self.steps = steps
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += 600  # ten minutes a poll, whatever the interval
        self.steps.pop(0)()


def run(
    stack: tuple[str, str],
    clients: train.ClientFactory,
    *args: str,
    scenario: Scenario | None = None,
    region: str = REGION,
) -> tuple[int, str]:
    out = io.StringIO()
    scenario = scenario or Scenario([])
    status = train.main(
        ["--region", region, "--stack-name", stack[0], *args],
        clients=clients,
        out=out,
        sleep=scenario.sleep,
        clock=scenario.clock,
        poll_seconds=0.01,
    )
    return status, out.getvalue()


def test_happy_path_starts_follows_and_says_how_to_deploy(moto_server: Aws, stack: tuple[str, str]) -> None:
    jobs = backend("sagemaker").training_jobs
    state: dict[str, str] = {}

    def job_starts() -> None:
        state["job"] = train.job_base_name(execution_of(stack[1]).name)
        create_job(moto_server, state["job"])
        job = jobs[state["job"]]
        job.training_job_status, job.secondary_status = "InProgress", "Downloading"
        job.final_metric_data_list = []

    def job_trains() -> None:
        job = jobs[state["job"]]
        job.secondary_status = "Training"
        job.final_metric_data_list = [
            {"MetricName": "train:loss", "Value": 2.3456, "Timestamp": utcnow()},
            {"MetricName": "eval:loss", "Value": 2.5, "Timestamp": utcnow()},
            {"MetricName": "train:epoch", "Value": 0.5, "Timestamp": utcnow()},
        ]

    def run_succeeds() -> None:
        jobs[state["job"]].training_job_status = jobs[state["job"]].secondary_status = "Completed"
        execution = execution_of(stack[1])
        execution.status, execution.stop_date = "SUCCEEDED", utcnow()
        execution.output = json.dumps(
            {
                "training_job_name": state["job"],
                "tuning_job_name": None,
                "model_s3_uri": f"s3://bucket/models/{state['job']}/output/model/",
                "dataset_id": "d0123",
                "manifest_uri": "s3://bucket/datasets/d0123/manifest.json",
                "attempts": 1,
            }
        )

    scenario = Scenario([job_starts, job_trains, run_succeeds])
    status, printed = run(stack, factory(moto_server), "--epochs", "1", "--method", "lora", scenario=scenario)

    assert status == 0, printed
    execution = execution_of(stack[1])
    # Every run setting, so the execution runs what was estimated whatever the deployed defaults are.
    assert json.loads(execution.execution_input) == {"doc_count": 693, "epochs": 1, "method": "lora"}
    job = state["job"]
    assert job == f"legal-gptj-{execution.name}"
    lines = printed.splitlines()
    # The preflight first (the deployed instance type's quota, the log group), then the estimate, then the start.
    assert lines[0] == (
        f"preflight for `make train`, account {ACCOUNT} in {REGION} (arn:aws:sts::{ACCOUNT}:user/moto): "
        "all checks passed"
    )
    assert [line.split()[0] for line in lines[2:4]] == ["training", "ml.p3dn.24xlarge"]
    assert lines[4] == (
        f"Cost estimate for this execution (config/default.json, epochs=1, method=lora) in {REGION} (USD)"
    )
    assert "693 documents x 1 epochs = ~13.0 M tokens, method lora" in printed
    assert "(derived: not measured:" in printed  # LoRA's throughput, from the measured full fine-tuning
    started = lines.index(
        f'started execution {execution.name} of {stack[0]} in {REGION}, input {{"doc_count": 693, "epochs": 1, '
        '"method": "lora"}'
    )
    assert f"training job: {job} " in lines[started + 1]
    assert f"https://{REGION}.console.aws.amazon.com/sagemaker/home?region={REGION}#/jobs/{job}" in printed
    assert "Ctrl-C detaches; the execution and its job keep running" in printed
    assert [line.split("] ", 1)[1] for line in lines if line.startswith("[")] == [
        "execution RUNNING; preparing the dataset",
        f"execution RUNNING; {job}: InProgress (Downloading)",
        f"execution RUNNING; {job}: InProgress (Training); train:loss 2.3456, eval:loss 2.5000",
        "execution SUCCEEDED",
    ]
    assert "[0:30:00] execution SUCCEEDED" in printed
    assert f"model: s3://bucket/models/{job}/output/model/" in printed
    # The line to put into the committed file, not a command line that would deploy without the other settings.
    assert lines[-2:] == [
        "serve it: put this line in config/default.json (in place of its fine_tuned_job), commit, `make deploy`:",
        f'  "fine_tuned_job": "{job}",',
    ]


def test_a_missing_training_log_group_stops_the_run_before_it_starts(
    moto_server: Aws, stack: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    logs = moto_server.client("logs")
    with contextlib.suppress(logs.exceptions.ResourceNotFoundException):
        logs.delete_log_group(logGroupName=TRAINING_LOG_GROUP)
    status, printed = run(stack, factory(moto_server), "--no-follow")
    assert (status, printed) == (1, "")
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: the log group {TRAINING_LOG_GROUP} does not exist in {REGION}")
    assert "aws logs put-retention-policy" in line
    assert moto_server.client("stepfunctions").list_executions(stateMachineArn=stack[1])["executions"] == []
    # With the preflight skipped the run starts, and the missing log group is still said, as a warning.
    status, printed = run(stack, factory(moto_server), "--no-follow", "--skip-preflight")
    assert status == 0
    assert printed.startswith(
        f"preflight skipped (SKIP_PREFLIGHT=1)\nwarning: the log group {TRAINING_LOG_GROUP} does not exist in {REGION}"
    )
    logs.create_log_group(logGroupName=TRAINING_LOG_GROUP)
    status, printed = run(stack, factory(moto_server), "--no-follow", "--skip-preflight")
    assert "warning" not in printed


def test_the_cost_estimate_hook_runs_before_the_start(
    moto_server: Aws, stack: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int, str]] = []
    monkeypatch.setattr(
        train, "print_cost_estimate", lambda s, label, out: calls.append((s.doc_count, s.epochs, s.method))
    )
    status, printed = run(stack, factory(moto_server), "--doc-count", "250", "--no-follow")
    assert (status, calls) == (0, [(250, 3, "full")])
    assert json.loads(execution_of(stack[1]).execution_input) == {"doc_count": 250, "epochs": 3, "method": "full"}
    assert "make train ARGS=--attach" in printed


def test_c_reaches_the_execution_input_as_the_flags_do(moto_server: Aws, stack: tuple[str, str]) -> None:
    status, printed = run(stack, factory(moto_server), "--C", "epochs=1", "--no-follow")
    assert status == 0, printed
    assert json.loads(execution_of(stack[1]).execution_input)["epochs"] == 1
    assert f"\nCost estimate for this execution (config/default.json with epochs=1) in {REGION}" in printed
    assert "693 documents x 1 epochs" in printed


def deployed_stack(moto_server: Aws, region: str = REGION, instance_type: str = "ml.p4d.24xlarge") -> tuple[str, str]:
    """A training stack deployed with another instance type than the settings file's, in `region`."""
    sfn = moto_server.client("stepfunctions", region)
    machine = sfn.create_state_machine(name=f"p4d-{uuid.uuid4().hex[:8]}", definition=DEFINITION, roleArn=ROLE_ARN)
    name = f"LegalGptjTraining{uuid.uuid4().hex[:6]}"
    outputs = {"StateMachineArn": machine["stateMachineArn"], "JobKind": "training", "InstanceType": instance_type}
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    moto_server.client("cloudformation", region).create_stack(StackName=name, TemplateBody=json.dumps(template))
    logs = moto_server.client("logs", region)
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=TRAINING_LOG_GROUP)
    return name, machine["stateMachineArn"]


def test_the_outputs_read_are_the_ones_the_training_stack_writes(moto_server: Aws, default_app: Assembly) -> None:
    """The stack above is written by hand; this one has the synthesized training stack's outputs (the state machine's
    ARN, a reference there, replaced by moto's), so a renamed output cannot leave `make train` on its fallbacks."""
    written = default_app.templates[train.STACK_NAME]["Outputs"]
    sfn = moto_server.client("stepfunctions")
    machine = sfn.create_state_machine(name=f"synth-{uuid.uuid4().hex[:8]}", definition=DEFINITION, roleArn=ROLE_ARN)
    values = {key: output["Value"] for key, output in written.items() if isinstance(output["Value"], str)}
    values["StateMachineArn"] = machine["stateMachineArn"]
    name = f"LegalGptjTraining{uuid.uuid4().hex[:6]}"
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in values.items()},
    }
    moto_server.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))
    pipeline = train.find_pipeline(factory(moto_server), REGION, name)
    assert "StateMachineArn" in written
    assert (pipeline.state_machine_arn, pipeline.job_kind) == (machine["stateMachineArn"], "training")
    assert pipeline.instance_type == Settings.training_instance_type  # what the defaults deploy


def test_the_estimate_is_for_the_deployed_instance_type(moto_server: Aws) -> None:
    moto_server.standin.state.applied.append(P4D_TRAINING)
    name, machine = deployed_stack(moto_server)
    status, printed = run((name, machine), factory(moto_server), "--no-follow")
    assert status == 0, printed
    assert f"warning: the deployed {name} differs from the settings file (training_instance_type=ml.p4d.24xlarge" in (
        printed
    )
    assert "ml.p4d.24xlarge for training job usage (L-2B3C4D5E)" in printed  # the preflight checked that type too
    assert "1 x ml.p4d.24xlarge" in printed


def test_the_preflight_checks_the_deployed_type_in_the_runs_region(
    moto_server: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    # The file says ml.p3dn.24xlarge in us-east-1 (quota 1); the run is in eu-west-2, where ml.p4d.24xlarge is
    # deployed and its quota is 0: the run must stop there, before it starts anything.
    moto_server.standin.state.applied.append(dataclasses.replace(P4D_TRAINING, value=0))
    name, machine = deployed_stack(moto_server, "eu-west-2")
    status, printed = run((name, machine), factory(moto_server, "eu-west-2"), "--no-follow", region="eu-west-2")
    assert status == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(
        'error: SageMaker quota "ml.p4d.24xlarge for training job usage" (L-2B3C4D5E) is 0 in eu-west-2 and the '
        "training job (1 x ml.p4d.24xlarge) needs 1:"
    )
    assert "Cost estimate" not in printed
    assert moto_server.client("stepfunctions", "eu-west-2").list_executions(stateMachineArn=machine)["executions"] == []


def test_the_estimate_is_for_the_runs_region(moto_server: Aws) -> None:
    moto_server.standin.state.applied.append(P4D_TRAINING)
    name, machine = deployed_stack(moto_server, "eu-west-2")
    status, printed = run((name, machine), factory(moto_server, "eu-west-2"), "--no-follow", region="eu-west-2")
    assert status == 0, printed
    assert "\nCost estimate for this execution (config/default.json) in eu-west-2 (USD)\n" in printed
    assert "no SageMaker price is known for eu-west-2" in printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--C", "learning_rate=1e-4"],
            "error: C= sets learning_rate=0.0001: a run may change doc_count, epochs, method only (the state machine "
            "accepts no other input); learning_rate is deployed configuration: change config/default.json and run "
            "`make deploy`\n",
        ),
        (["--C", "epochs=1", "--epochs", "2"], "error: C= sets epochs=1 but --epochs 2: give one\n"),
        (
            ["--C", "epochs 1"],
            "error: C='epochs 1': 'epochs' is not key=value: expected key=value, e.g. doc_count=250\n",
        ),
    ],
)
def test_what_a_run_cannot_change_is_refused_before_any_call(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_calls(service: str, region: str) -> Any:
        raise AssertionError("no AWS call expected")

    assert train.main(["--region", REGION, *args], clients=no_calls, out=io.StringIO()) == 1
    assert capsys.readouterr().err == message


def test_a_failed_run_prints_its_cause_and_exits_1(moto_server: Aws, stack: tuple[str, str]) -> None:
    def run_fails() -> None:
        execution = execution_of(stack[1])
        execution.status, execution.stop_date = "FAILED", utcnow()
        execution.error, execution.cause = (
            "States.TaskFailed",
            '{"FailureReason": "AlgorithmError: ExecuteUserScriptError"}',
        )

    status, printed = run(stack, factory(moto_server), scenario=Scenario([run_fails]))
    assert status == 1
    assert "the execution ended FAILED: States.TaskFailed:" in printed and "AlgorithmError" in printed
    assert "make deploy" not in printed


def test_ctrl_c_detaches_and_leaves_the_run_going(moto_server: Aws, stack: tuple[str, str]) -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    status, printed = run(stack, factory(moto_server), scenario=Scenario([interrupt]))
    assert status == 130
    assert "detached: the execution and its SageMaker job keep running" in printed
    assert execution_of(stack[1]).status == "RUNNING"


def test_attach_follows_the_latest_running_execution(moto_server: Aws, stack: tuple[str, str]) -> None:
    sfn = moto_server.client("stepfunctions")
    sfn.start_execution(stateMachineArn=stack[1], name="260126-101500-a1b2", input="{}")

    def run_aborted() -> None:
        execution = execution_of(stack[1])
        execution.status, execution.stop_date = "ABORTED", utcnow()

    status, printed = run(stack, factory(moto_server), "--attach", scenario=Scenario([run_aborted]))
    assert status == 1
    assert printed.startswith("attached to execution 260126-101500-a1b2\n")
    assert "the execution ended ABORTED" in printed


def test_stop_stops_the_latest_running_execution_and_its_job(
    moto_server: Aws, stack: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    sfn = moto_server.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=stack[1], name="260126-101500-a1b2", input="{}")["executionArn"]
    sagemaker = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    base = "legal-gptj-260126-101500-a1b2"
    with Stubber(sagemaker) as stubber:
        query = {"NameContains": base}
        stubber.add_response("list_hyper_parameter_tuning_jobs", stubs.tuning_summaries(), query)
        stubber.add_response("list_training_jobs", stubs.training_summaries(f"{base}-r2"), query)
        stubber.add_response("stop_training_job", {}, {"TrainingJobName": f"{base}-r2"})
        status, printed = run(stack, factory(moto_server, sagemaker=sagemaker), "--stop")
        stubber.assert_no_pending_responses()
    assert status == 0
    assert printed == (
        f"stopped execution 260126-101500-a1b2 and training job {base}-r2; "
        "SageMaker takes a few minutes to stop a job\n"
    )
    assert sfn.describe_execution(executionArn=arn)["status"] == "ABORTED"
    assert capsys.readouterr().out == ""  # nothing besides the command's own lines (no Lambda log records)
    status, printed = run(stack, factory(moto_server), "--stop")
    assert (status, printed) == (0, f"no running training execution in {REGION}\n")


def test_an_undeployed_stack_is_one_clear_line(moto_server: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    status, printed = run(("LegalGptjTrainingMissing", ""), factory(moto_server))
    assert (status, printed) == (1, "")
    assert capsys.readouterr().err == (
        f"error: the training stack LegalGptjTrainingMissing is not deployed in {REGION}: deploy it with "
        "`make deploy` (or name the region: -c region=... or --region)\n"
    )


def test_missing_credentials_are_one_clear_line(
    moto_server: Aws, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask an instance metadata service
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.moto.endpoint_url)  # and never any real endpoint
    status = train.main(["--region", REGION], out=io.StringIO())
    assert status == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no AWS credentials found: configure them") and err.count("\n") == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--epochs", "0"],
        ["--epochs", "101"],
        ["--doc-count", "694"],
        ["--method", "qlora"],
        ["--stop", "--epochs", "2"],
    ],
)
def test_bad_overrides_are_refused_before_any_call(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    def no_calls(service: str, region: str) -> Any:
        raise AssertionError("no AWS call expected")

    with pytest.raises(SystemExit) as exit_info:
        train.main(["--region", REGION, *args], clients=no_calls, out=io.StringIO())
    assert exit_info.value.code == 2
    assert "make train: error:" in capsys.readouterr().err


def test_tuning_progress_shows_the_best_job_so_far() -> None:
    sagemaker = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    base = "legal-gptj-260126-101500-a1b2"
    with Stubber(sagemaker) as stubber:
        stubber.add_response("list_hyper_parameter_tuning_jobs", stubs.tuning_summaries(base), {"NameContains": base})
        stubber.add_response(
            "describe_hyper_parameter_tuning_job",
            stubs.tuning_job(base, best=f"{base}-001-0123abcd", best_loss=2.125),
            {"HyperParameterTuningJobName": base},
        )
        line = train.tuning_progress(sagemaker, base)
    assert line == f"{base}: InProgress (1 jobs completed, 1 in progress); best eval:loss 2.1250 ({base}-001-0123abcd)"


def test_execution_names_become_whole_job_names() -> None:
    name = train.new_execution_name()
    assert len(name) == 18
    assert train.job_base_name(name) == f"legal-gptj-{name}"


def test_the_stack_name_is_the_apps() -> None:
    from stacks.app_builder import STACK_PREFIX

    assert f"{STACK_PREFIX}Training" == train.STACK_NAME


def test_a_malformed_context_value_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert train.main(["-c", "doc_count"]) == 1
    assert capsys.readouterr().err == "error: expected -c key=value, got 'doc_count'\n"
