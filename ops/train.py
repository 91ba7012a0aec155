"""`make train`: start the deployed training pipeline, follow it until the model is ready, say how to deploy it.

    make train                                   # the committed configuration (config/<ENV>.json)
    make train ARGS="--doc-count 250 --epochs 1 --method lora"
    make train C="epochs=1"                      # the same, as settings
    make train ARGS=--no-follow                  # start and return
    make train ARGS=--attach                     # follow the latest running execution again
    make train ARGS=--stop                       # stop the latest running execution and its job

Before it starts, the preflight's checks for a training run (ops/preflight.py: the log group, the quota of the
deployed instance type in the run's region) stop it at what would fail later (--skip-preflight, SKIP_PREFLIGHT=1).
A run may change doc_count, epochs and method only (the state machine checks its input too), by flags or by C=;
the execution input always names all three, so the execution runs what the estimate printed before it starts. Every
other setting is deployed configuration: change the settings file and `make deploy`. Ctrl-C detaches: the execution
and its SageMaker job keep running. The stack is found by its CloudFormation outputs in the settings' region (or
`C=region=...`, or --region).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import secrets
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import quote

from config.settings import EPOCHS_RANGE, METHODS, UK_ABS_TRAIN_DOCUMENTS, Settings
from lambdas.stop_executions.handler import (
    EXECUTION_NAME_CHARS,
    is_job_of,
    job_base_name,
    running_executions,
    stop_execution_and_jobs,
)
from ops import preflight
from ops.aws import ClientFactory, Clients, stack_outputs
from ops.context import SETTINGS_ERRORS, Selection, add_arguments, selection_from
from ops.cost import estimate_lines
from ops.errors import OperatorError, run_command
from stacks.constructs.training_definition import OVERRIDABLE_INPUT

STACK_NAME = "LegalGptjTraining"  # stacks.app_builder: STACK_PREFIX + "Training"
POLL_SECONDS = 30.0
# Metrics worth a glance while a job runs (SageMaker parses them from the log with training/metrics.py's regexes).
FOLLOWED_METRICS = ("train:loss", "eval:loss")


class CliError(OperatorError):
    """A one-line message for the operator; the command exits with status 1."""


@dataclass(frozen=True)
class Pipeline:
    region: str
    stack_name: str
    state_machine_arn: str
    job_kind: str  # "training" or "tuning"
    instance_type: str = ""  # the deployed training instance type (empty for a stack without that output)


def find_pipeline(clients: ClientFactory, region: str, stack_name: str = STACK_NAME) -> Pipeline:
    """The deployed pipeline, from the training stack's outputs."""
    outputs = stack_outputs(clients("cloudformation", region), stack_name)
    if outputs is None:
        raise CliError(
            f"the training stack {stack_name} is not deployed in {region}: deploy it with `make deploy` "
            "(or name the region: -c region=... or --region)"
        )
    if "StateMachineArn" not in outputs:
        raise CliError(f"the stack {stack_name} in {region} has no StateMachineArn output: deploy it again")
    return Pipeline(
        region,
        stack_name,
        outputs["StateMachineArn"],
        outputs.get("JobKind", "training"),
        outputs.get("InstanceType", ""),
    )


def new_execution_name(now: datetime | None = None) -> str:
    """`YYMMDD-HHMMSS-xxxx` (UTC): sortable, unique enough, and short enough to become the whole job name."""
    stamp = (now or datetime.now(UTC)).strftime("%y%m%d-%H%M%S")
    name = f"{stamp}-{secrets.token_hex(2)}"
    assert len(name) <= EXECUTION_NAME_CHARS
    return name


def console_links(pipeline: Pipeline, execution_arn: str, job: str) -> dict[str, str]:
    region = pipeline.region
    sagemaker = f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}"
    page = "hyper-tuning-jobs" if pipeline.job_kind == "tuning" else "jobs"
    return {
        "SageMaker": f"{sagemaker}#/{page}/{job}",
        "Step Functions": f"https://{region}.console.aws.amazon.com/states/home?region={region}"
        f"#/v2/executions/details/{quote(execution_arn, safe='')}",
    }


def run_settings(selection: Selection, flags: Mapping[str, object]) -> Settings:
    """The settings of the execution to start: the file, C= (run settings only) and the flags, which must agree."""
    label = selection.environment.label
    changed = selection.differences()
    for key, (_, value) in changed.items():
        if key not in OVERRIDABLE_INPUT and key != "region":
            raise CliError(
                f"C= sets {key}={value!r}: a run may change {', '.join(OVERRIDABLE_INPUT)} only (the state machine "
                f"accepts no other input); {key} is deployed configuration: change {label} and run `make deploy`"
            )
    chosen = selection.settings()
    for key, value in flags.items():
        if key in selection.overrides and getattr(chosen, key) != value:
            raise CliError(f"C= sets {key}={getattr(chosen, key)!r} but --{key.replace('_', '-')} {value}: give one")
    return dataclasses.replace(chosen, **flags)  # type: ignore[arg-type]


def execution_input(settings: Settings) -> dict[str, object]:
    """Every key the state machine lets a run change, so that what it runs does not depend on deployed defaults."""
    return {key: getattr(settings, key) for key in OVERRIDABLE_INPUT}


def deployed_settings(settings: Settings, pipeline: Pipeline, out: TextIO) -> Settings:
    """The run's settings on what is deployed, where it is deployed: the stack's instance type and job kind win over
    the file's, and the region is the one the run starts in (--region may name another than the file's). What the
    estimate prices and the preflight checks."""
    deployed: dict[str, object] = {}
    if pipeline.instance_type and pipeline.instance_type != settings.training_instance_type:
        deployed["training_instance_type"] = pipeline.instance_type
    if (pipeline.job_kind == "tuning") != settings.tuning_enabled:
        deployed["tuning_enabled"] = pipeline.job_kind == "tuning"
    if deployed:
        listed = ", ".join(f"{key}={value}" for key, value in deployed.items())
        print(
            f"warning: the deployed {pipeline.stack_name} differs from the settings file ({listed} is deployed): "
            "the estimate and the preflight are for what is deployed; `make diff` shows the rest",
            file=out,
        )
    return dataclasses.replace(settings, region=pipeline.region, **deployed)  # type: ignore[arg-type]


def print_cost_estimate(settings: Settings, label: str, out: TextIO) -> None:
    """The estimate of the execution about to start, before it starts."""
    for line in estimate_lines(settings, endpoints=False, label=f"this execution ({label})"):
        print(line, file=out)


def check_before_starting(settings: Settings, clients: ClientFactory, out: TextIO, *, skip: bool) -> bool:
    """The preflight of a training run (its log group, its quota: ops/preflight.py) for the deployed settings in the
    run's region; True when the run may start. Skipped (--skip-preflight), only the log group is looked at, and its
    absence is a warning: a job without it runs, but its logs are lost."""
    if not skip:
        return preflight.check(settings, scope="train", region=settings.region, clients=clients, out=out)
    print("preflight skipped (SKIP_PREFLIGHT=1)", file=out)
    problem = preflight.check_training_log_group(preflight.Regional(clients, settings.region)).problem
    if problem:
        print(f"warning: {problem}", file=out)
    return True


def start(pipeline: Pipeline, clients: ClientFactory, overrides: Mapping[str, object], out: TextIO) -> str:
    name = new_execution_name()
    arn: str = clients("stepfunctions", pipeline.region).start_execution(
        stateMachineArn=pipeline.state_machine_arn, name=name, input=json.dumps(dict(overrides))
    )["executionArn"]
    job = job_base_name(name)
    kind = "tuning job" if pipeline.job_kind == "tuning" else "training job"
    print(
        f"started execution {name} of {pipeline.stack_name} in {pipeline.region}, input {json.dumps(dict(overrides))}",
        file=out,
    )
    print(f"  {kind}: {job} (a retry after a capacity failure is named {job}-r2, -r3, ...)", file=out)
    for label, url in console_links(pipeline, arn, job).items():
        print(f"  {label}: {url}", file=out)
    return arn


def _elapsed(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _metrics(values: Mapping[str, float]) -> str:
    shown = [f"{name} {values[name]:.4f}" for name in FOLLOWED_METRICS if name in values]
    return ", ".join(shown)


def training_progress(sagemaker: Any, base: str) -> str:
    """The latest attempt's status, secondary status and latest losses; or what happens before there is a job."""
    summaries = [
        s
        for s in sagemaker.list_training_jobs(NameContains=base, SortBy="CreationTime", SortOrder="Descending").get(
            "TrainingJobSummaries", []
        )
        if is_job_of(base, s["TrainingJobName"])
    ]
    if not summaries:
        return "preparing the dataset"
    latest = max(summaries, key=lambda s: s["CreationTime"])
    job = sagemaker.describe_training_job(TrainingJobName=latest["TrainingJobName"])
    values = {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}
    line = f"{job['TrainingJobName']}: {job['TrainingJobStatus']} ({job['SecondaryStatus']})"
    shown = _metrics(values)
    return f"{line}; {shown}" if shown else line


def tuning_progress(sagemaker: Any, base: str) -> str:
    summaries = [
        s
        for s in sagemaker.list_hyper_parameter_tuning_jobs(NameContains=base).get(
            "HyperParameterTuningJobSummaries", []
        )
        if is_job_of(base, s["HyperParameterTuningJobName"])
    ]
    if not summaries:
        return "preparing the dataset"
    latest = max(summaries, key=lambda s: s["CreationTime"])
    job = sagemaker.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=latest["HyperParameterTuningJobName"]
    )
    counters = job["TrainingJobStatusCounters"]
    line = (
        f"{job['HyperParameterTuningJobName']}: {job['HyperParameterTuningJobStatus']} "
        f"({counters.get('Completed', 0)} jobs completed, {counters.get('InProgress', 0)} in progress)"
    )
    best = job.get("BestTrainingJob")
    if best and "FinalHyperParameterTuningJobObjectiveMetric" in best:
        objective = best["FinalHyperParameterTuningJobObjectiveMetric"]
        line += f"; best {objective['MetricName']} {objective['Value']:.4f} ({best['TrainingJobName']})"
    return line


def follow(
    pipeline: Pipeline,
    clients: ClientFactory,
    execution_arn: str,
    out: TextIO,
    *,
    settings_file: str,
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Print a line whenever the execution or its job changes, until the execution ends; 0 when it succeeded.
    `settings_file` is where report() says to put the model's training job (the environment's file)."""
    sfn = clients("stepfunctions", pipeline.region)
    sagemaker = clients("sagemaker", pipeline.region)
    progress = tuning_progress if pipeline.job_kind == "tuning" else training_progress
    started = clock()
    last = ""
    print("following (Ctrl-C detaches; the execution and its job keep running)", file=out)
    while True:
        execution = sfn.describe_execution(executionArn=execution_arn)
        status = execution["status"]
        base = job_base_name(execution["name"])
        line = f"execution {status}; {progress(sagemaker, base)}" if status == "RUNNING" else f"execution {status}"
        if line != last:
            print(f"[{_elapsed(clock() - started)}] {line}", file=out, flush=True)
            last = line
        if status != "RUNNING":
            return report(execution, out, settings_file)
        sleep(poll_seconds)


def report(execution: Mapping[str, Any], out: TextIO, settings_file: str) -> int:
    if execution["status"] != "SUCCEEDED":
        cause = " ".join(str(execution.get("cause", "")).split())[:600]
        print(f"the execution ended {execution['status']}: {execution.get('error', 'no error')}: {cause}", file=out)
        return 1
    result = json.loads(execution["output"])
    job = result["training_job_name"]
    print(f"model: {result['model_s3_uri']}", file=out)
    print(
        f"  training job {job}"
        + (f" (best of tuning job {result['tuning_job_name']})" if result.get("tuning_job_name") else ""),
        file=out,
    )
    print(f"  dataset {result['dataset_id']} ({result['manifest_uri']})", file=out)
    # The hint changes the committed file, not the command line: a C= deploy would drop every other committed setting.
    print(
        f"serve it: put this line in {settings_file} (in place of its fine_tuned_job), commit, `make deploy`:", file=out
    )
    print(f"  {json.dumps('fine_tuned_job')}: {json.dumps(job)},", file=out)
    return 0


def latest_running(pipeline: Pipeline, clients: ClientFactory) -> Mapping[str, Any] | None:
    running = running_executions(clients("stepfunctions", pipeline.region), pipeline.state_machine_arn)
    return running[0] if running else None


def stop_latest(pipeline: Pipeline, clients: ClientFactory, out: TextIO) -> int:
    execution = latest_running(pipeline, clients)
    if execution is None:
        print(f"no running training execution in {pipeline.region}", file=out)
        return 0
    jobs = stop_execution_and_jobs(
        clients("stepfunctions", pipeline.region),
        clients("sagemaker", pipeline.region),
        execution,
        reason="Stopped by make train --stop.",
    )
    stopped = ", ".join(f"{job.kind} job {job.name}" for job in jobs) or "no job (none had started)"
    print(f"stopped execution {execution['name']} and {stopped}; SageMaker takes a few minutes to stop a job", file=out)
    return 0


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer from {low} to {high}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer from {low} to {high}, got {value}")
        return value

    return parse


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--doc-count", type=_bounded(1, UK_ABS_TRAIN_DOCUMENTS), help="judgments to train on")
    parser.add_argument("--epochs", type=_bounded(*EPOCHS_RANGE), help="training epochs")
    parser.add_argument("--method", choices=METHODS, help="full fine-tuning or LoRA")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--stop", action="store_true", help="stop the latest running execution and its job")
    action.add_argument("--attach", action="store_true", help="follow the latest running execution")
    action.add_argument("--no-follow", action="store_true", help="start the execution and return")
    parser.add_argument("--region", help="region of the deployed stacks (default: the configured region)")
    parser.add_argument(
        "--skip-preflight", action="store_true", help="start without the preflight's checks (SKIP_PREFLIGHT=1)"
    )
    parser.add_argument("--stack-name", default=STACK_NAME, help=argparse.SUPPRESS)
    add_arguments(parser)
    args = parser.parse_args(argv)
    if (args.stop or args.attach) and any(v is not None for v in (args.doc_count, args.epochs, args.method)):
        parser.error("--doc-count, --epochs and --method apply to a new execution, not to --stop or --attach")
    return args


def run(
    argv: Sequence[str] | None = None,
    *,
    clients: ClientFactory | None = None,
    out: TextIO = sys.stdout,
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    args = parse_args(argv)
    clients = clients or Clients()  # one per run: the credentials in place now (ops.aws)
    selection = selection_from(args)
    flags = {
        key: value
        for key, value in (("doc_count", args.doc_count), ("epochs", args.epochs), ("method", args.method))
        if value is not None
    }
    settings = run_settings(selection, flags) if not (args.stop or args.attach) else selection.settings()
    region = args.region or settings.region
    pipeline = find_pipeline(clients, region, args.stack_name)
    if args.stop:
        return stop_latest(pipeline, clients, out)
    if args.attach:
        execution = latest_running(pipeline, clients)
        if execution is None:
            print(f"no running training execution in {region}", file=out)
            return 0
        print(f"attached to execution {execution['name']}", file=out)
        arn = str(execution["executionArn"])
    else:
        run_input = execution_input(settings)
        label = selection.describe() + "".join(f", {k}={v}" for k, v in flags.items())
        deployed = deployed_settings(settings, pipeline, out)
        if not check_before_starting(deployed, clients, out, skip=args.skip_preflight):
            return 1
        print_cost_estimate(deployed, label, out)
        arn = start(pipeline, clients, run_input, out)
        if args.no_follow:
            print("not following: `make train ARGS=--attach` follows it, `make train ARGS=--stop` stops it", file=out)
            return 0
    try:
        return follow(
            pipeline,
            clients,
            arn,
            out,
            settings_file=selection.environment.label,
            sleep=sleep,
            poll_seconds=poll_seconds,
            clock=clock,
        )
    except KeyboardInterrupt:
        print(
            "\ndetached: the execution and its SageMaker job keep running "
            "(`make train ARGS=--attach` follows again, `make train ARGS=--stop` stops them)",
            file=out,
        )
        return 130


def main(argv: Sequence[str] | None = None, **kwargs: Any) -> int:
    # CliError is an OperatorError; AWS's and botocore's failures: ops.errors.
    return run_command(lambda: run(argv, **kwargs), expected=SETTINGS_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
