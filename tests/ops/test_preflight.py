"""`make preflight` (ops/preflight.py) against an account on loopback: moto for STS, CloudFormation, SSM and
CloudWatch Logs; the stand-in (fakes/aws_standin.py) for Service Quotas and Lambda's account settings, which moto
5.2.5 lacks. Each problem must be one line naming what is wrong and the fix, with exit status 1."""

from __future__ import annotations

import json
import shutil
import subprocess
from email.message import Message
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.model import ListShape, Shape, StructureShape
from moto.backends import get_backend

from fakes.aws_standin import LambdaConcurrency, Quota, Request, StandIn, answer
from fakes.moto_server import ACCOUNT, REGION
from ops import cdk, preflight
from tests.ops.loopback import (
    G5_ENDPOINT,
    P3DN_TRAINING,
    PARAMETER,
    Loopback,
    bootstrapped,
    default_quotas,
    not_bootstrapped,
    ready,
    training_log_group,
)
from tests.synth import Assembly

ROOT = Path(__file__).resolve().parents[2]
Calls = list[list[str]]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, list[str]]:
    status = preflight.main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err.splitlines()


def one_error_per_line(lines: list[str]) -> list[str]:
    assert lines and all(line.startswith("error: ") for line in lines), lines
    assert not any("Traceback" in line for line in lines)
    return [line.removeprefix("error: ") for line in lines]


def refused(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    """The problems of a preflight that must fail: exit status 1, no table, one `error:` line each."""
    status, out, err = run(capsys, *args)
    assert (status, out) == (1, ""), err
    return one_error_per_line(err)


def test_a_ready_account_gets_a_table_of_what_was_checked(
    account: Loopback, capsys: pytest.CaptureFixture[str]
) -> None:
    ready(account)
    status, out, err = run(capsys)
    assert (status, err) == (0, [])
    lines = out.splitlines()
    assert lines[0] == (
        f"preflight for `make deploy`, account {ACCOUNT} in {REGION} (arn:aws:sts::{ACCOUNT}:user/moto): "
        "all checks passed"
    )
    rows = [line.split() for line in lines[2:]]
    assert [row[:2] for row in rows] == [["CDK", "bootstrap"], ["training", "log"], ["Lambda", "concurrency"],
                                         ["ml.p3dn.24xlarge", "for"], ["endpoint", "quota"]]  # fmt: skip
    assert "version 21 (CREATE_COMPLETE)" in lines[2]
    assert lines[5].split()[-2:] == ["1", "1"]  # needed 1, found 1
    assert "(L-4A2E0F7B)" in lines[5]
    assert "1000 of 1000 unreserved" in lines[4]
    # Only read-only calls, and every page of the applied quotas (the one needed is on the second page).
    calls = account.standin.state.calls
    assert calls.count("ListServiceQuotas") == 4 and "GET /2016-08-19/account-settings" in calls


def test_a_training_quota_of_zero_is_named_with_how_to_request_it(
    account: Loopback, capsys: pytest.CaptureFixture[str]
) -> None:
    state = ready(account)
    state.applied = [Quota(P3DN_TRAINING.service, P3DN_TRAINING.code, P3DN_TRAINING.name, 0), G5_ENDPOINT]
    assert refused(capsys) == [
        'SageMaker quota "ml.p3dn.24xlarge for training job usage" (L-4A2E0F7B) is 0 in us-east-1 and the training '
        "job (1 x ml.p3dn.24xlarge) needs 1: request 1 with `aws service-quotas request-service-quota-increase "
        "--region us-east-1 --service-code sagemaker --quota-code L-4A2E0F7B --desired-value 1` or at "
        "https://us-east-1.console.aws.amazon.com/servicequotas/home/services/sagemaker/quotas/L-4A2E0F7B"
    ]


def test_spot_checks_the_spot_quota_from_the_defaults(account: Loopback, capsys: pytest.CaptureFixture[str]) -> None:
    # ListServiceQuotas leaves out quotas without an applied value: the spot quota is found among AWS's defaults.
    ready(account)
    (line,) = refused(capsys, "-c", "use_spot=true", "--for", "train")
    assert line.startswith(
        'SageMaker quota "ml.p3dn.24xlarge for spot training job usage" (L-7C9D1E22) is 0 in us-east-1 and the '
        "training job (1 x ml.p3dn.24xlarge on spot) needs 1:"
    )


def test_tuning_needs_its_parallel_jobs_times_the_instances(
    account: Loopback, capsys: pytest.CaptureFixture[str]
) -> None:
    ready(account)
    args = ["-c", "tuning_enabled=true", "-c", "tuning_max_jobs=4", "-c", "tuning_parallel_jobs=2"]
    (line,) = refused(capsys, *args, "-c", "training_instance_count=2", "--for", "train")
    assert "is 1 in us-east-1 and the tuning job (2 jobs at once x 2 x ml.p3dn.24xlarge) needs 4" in line
    assert "--desired-value 4" in line


def test_endpoints_need_their_maximum_capacity_each(account: Loopback, capsys: pytest.CaptureFixture[str]) -> None:
    ready(account)
    (line,) = refused(
        capsys, "-c", "deploy_base_endpoint=true", "-c", "fine_tuned_job=legal-gptj-260101-000000-abcd",
        "-c", "endpoint_max_capacity=3",
    )  # fmt: skip
    assert line.startswith(
        'SageMaker quota "ml.g5.12xlarge for endpoint usage" (L-65C4BD00) is 4 in us-east-1 and the base and '
        "fine-tuned endpoints (up to 3 x ml.g5.12xlarge each, endpoint_max_capacity) needs 6:"
    )


def test_an_instance_type_without_a_quota_in_the_region(account: Loopback, capsys: pytest.CaptureFixture[str]) -> None:
    ready(account)
    assert refused(capsys, "-c", "training_instance_type=ml.p5e.48xlarge", "--for", "train") == [
        'SageMaker has no quota "ml.p5e.48xlarge for training job usage" in us-east-1: the training job '
        "(1 x ml.p5e.48xlarge) cannot run on that instance type there; choose another instance type or region"
    ]


def test_an_account_that_is_not_bootstrapped(account: Loopback, capsys: pytest.CaptureFixture[str]) -> None:
    ready(account)
    not_bootstrapped(account)
    assert refused(capsys) == [
        f"account {ACCOUNT} is not bootstrapped for the CDK in us-east-1 (no CDKToolkit stack): run `make bootstrap` "
        f"(cdk bootstrap aws://{ACCOUNT}/us-east-1)"
    ]


def test_an_old_bootstrap_version(account: Loopback, capsys: pytest.CaptureFixture[str]) -> None:
    ready(account)
    bootstrapped(account, version="5")
    assert refused(capsys) == [
        "the CDK bootstrap in us-east-1 is version 5; these templates need 6 or newer: run `make bootstrap` to "
        "upgrade it"
    ]


def test_the_bootstrap_qualifier_comes_from_the_cdk_context(
    account: Loopback, capsys: pytest.CaptureFixture[str]
) -> None:
    ready(account)
    assert refused(capsys, "-c", "@aws-cdk/core:bootstrapQualifier=team42") == [
        "the SSM parameter /cdk-bootstrap/team42/version that the templates check is missing in us-east-1 "
        "(bootstrapped with another qualifier?): run `make bootstrap`"
    ]


def test_a_bootstrap_stack_that_failed(account: Loopback, capsys: pytest.CaptureFixture[str]) -> None:
    ready(account)
    stacks = get_backend("cloudformation")[ACCOUNT][REGION].stacks  # type: ignore[index]
    (toolkit,) = [s for s in stacks.values() if s.name == preflight.TOOLKIT_STACK and s.status != "DELETE_COMPLETE"]
    toolkit.status = "ROLLBACK_COMPLETE"  # what a failed first `cdk bootstrap` leaves
    try:
        lines = refused(capsys)
    finally:
        toolkit.status = "CREATE_COMPLETE"
    assert lines == [
        "the CDK bootstrap stack CDKToolkit in us-east-1 is ROLLBACK_COMPLETE: let it finish, or delete it in the "
        "CloudFormation console if it failed, then run `make bootstrap`"
    ]


def test_a_missing_training_log_group_stops_the_run(account: Loopback, capsys: pytest.CaptureFixture[str]) -> None:
    ready(account)
    training_log_group(account, exists=False)
    (line,) = refused(capsys, "--for", "train")
    assert line.startswith("the log group /aws/sagemaker/TrainingJobs does not exist in us-east-1, so a training job's")
    assert line.endswith(
        "aws logs create-log-group --region us-east-1 --log-group-name /aws/sagemaker/TrainingJobs && aws logs "
        "put-retention-policy --region us-east-1 --log-group-name /aws/sagemaker/TrainingJobs --retention-in-days 30"
    )


def test_a_reservation_a_new_account_cannot_give(account: Loopback, capsys: pytest.CaptureFixture[str]) -> None:
    state = ready(account)
    state.concurrency = LambdaConcurrency(concurrent_executions=10, unreserved=10)
    assert run(capsys)[0] == 0  # nothing reserved by default: deploys there
    assert refused(capsys, "-c", "prep_reserved_concurrency=1") == [
        "prep_reserved_concurrency=1 would leave 9 of the account's 10 Lambda concurrent executions unreserved in "
        "us-east-1, below Lambda's minimum of 10, so the dataset stack would fail to deploy: set "
        'prep_reserved_concurrency=0 (the default), or raise the Lambda quota "Concurrent executions" (L-B99A9384) '
        "to 101: aws service-quotas request-service-quota-increase --region us-east-1 --service-code lambda "
        "--quota-code L-B99A9384 --desired-value 101"
    ]
    state.concurrency = LambdaConcurrency(concurrent_executions=1000, unreserved=1000)
    assert run(capsys, "-c", "prep_reserved_concurrency=1")[0] == 0


def test_for_train_checks_only_what_a_training_run_needs(account: Loopback, capsys: pytest.CaptureFixture[str]) -> None:
    ready(account)
    not_bootstrapped(account)  # deploy's concern, not a training run's
    status, out, _ = run(capsys, "--for", "train")
    assert status == 0
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["training", "ml.p3dn.24xlarge"]
    assert "GET /2016-08-19/account-settings" not in account.standin.state.calls


def test_every_check_that_is_denied_says_so_in_its_own_line(
    account: Loopback, capsys: pytest.CaptureFixture[str]
) -> None:
    # moto enforces IAM for what it serves (CloudFormation, CloudWatch Logs); the stand-in has no IAM.
    ready(account)
    with account.denied():
        lines = refused(capsys)
    assert [line.split(": access denied to ")[0] for line in lines] == [
        "cannot check the CDK bootstrap",
        "cannot check the training log group",
    ]
    assert lines[0] == (
        "cannot check the CDK bootstrap: access denied to DescribeStacks: User: arn:aws:iam::123456789012:user/"
        f"{lines[0].split('user/')[1].split()[0]} is not authorized to perform: cloudformation:DescribeStacks; run "
        "with credentials allowed to call it (ask for that permission, or pick another AWS_PROFILE)"
    )
    assert lines[1].startswith("cannot check the training log group: access denied to DescribeLogGroups: ")


def test_every_check_that_is_throttled_says_so_in_its_own_line(
    account: Loopback, capsys: pytest.CaptureFixture[str]
) -> None:
    # The stand-in's APIs throttle (Lambda's REST-JSON 429, Service Quotas' JSON 1.1 error) while moto's answer: the
    # throttled checks each report it, parsed by botocore from each protocol's error, and the others still pass.
    ready(account).throttle = True
    throttled = (
        "even after retries: wait a minute and run again (other tools calling the same API in this account and "
        "region share its rate)"
    )
    assert refused(capsys, "-c", "deploy_base_endpoint=true") == [
        f"cannot check Lambda's concurrency: AWS throttled GetAccountSettings (TooManyRequestsException) {throttled}",
        f"cannot check the training quota: AWS throttled ListServiceQuotas (ThrottlingException) {throttled}",
        f"cannot check the endpoint quota: AWS throttled ListServiceQuotas (ThrottlingException) {throttled}",
    ]


SCALARS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "long": (int,),
    "double": (int, float),
    "boolean": (bool,),
}


def off_the_model(value: Any, shape: Shape, path: str = "") -> list[str]:
    """Where `value`, a JSON answer, has a member or a type that `shape` (botocore's model) does not: botocore's
    parser drops unknown members silently, so a misspelt one would only look like a missing value."""
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            return [f"{path or '.'}: not an object"]
        return [
            stray
            for key, item in value.items()
            for stray in (
                off_the_model(item, shape.members[key], f"{path}.{key}") if key in shape.members else [f"{path}.{key}"]
            )
        ]
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            return [f"{path}: not a list"]
        return [stray for n, item in enumerate(value) for stray in off_the_model(item, shape.member, f"{path}[{n}]")]
    if not isinstance(value, SCALARS[shape.type_name]) or (shape.type_name != "boolean" and isinstance(value, bool)):
        return [f"{path}: {type(value).__name__}, not {shape.type_name}"]
    return []


def test_the_standins_answers_are_members_of_botocores_output_shapes() -> None:
    # Each request as botocore's model says it is sent (JSON 1.1's X-Amz-Target, REST-JSON's method and path).
    state = default_quotas(StandIn())
    session = botocore.session.get_session()
    for service, operation, body in [
        ("service-quotas", "ListServiceQuotas", b'{"ServiceCode": "sagemaker"}'),
        ("service-quotas", "ListAWSDefaultServiceQuotas", b'{"ServiceCode": "sagemaker"}'),
        ("lambda", "GetAccountSettings", b""),
    ]:
        model = session.get_service_model(service)
        operation_model = model.operation_model(operation)
        headers = Message()
        if model.protocol == "json":
            headers["X-Amz-Target"] = f"{model.metadata['targetPrefix']}.{operation}"
        request = Request(operation_model.http["method"], operation_model.http["requestUri"], "", headers, body)
        status, _, content = answer(state, request)
        payload = json.loads(content)
        assert status == 200, payload
        assert payload and off_the_model(payload, operation_model.output_shape) == [], operation


def test_the_constants_match_the_app(default_app: Assembly) -> None:
    import aws_cdk as cdk

    assert cdk.DefaultStackSynthesizer.DEFAULT_QUALIFIER == preflight.DEFAULT_QUALIFIER
    manifest = json.loads((default_app.outdir / "manifest.json").read_text())
    required = {
        artifact["properties"]["requiresBootstrapStackVersion"]
        for artifact in manifest["artifacts"].values()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    assert required == {preflight.REQUIRED_BOOTSTRAP_VERSION}
    template = default_app.templates["LegalGptjDataset"]
    assert template["Parameters"]["BootstrapVersion"]["Default"] == PARAMETER


def deploy(capsys: pytest.CaptureFixture[str], *args: str, clients: Any = None) -> tuple[int, str, list[str], Calls]:
    """`make deploy` as far as the CLI: ops.cdk's entry point, recording what it would execute."""
    calls: Calls = []
    status = cdk.main(["deploy", *args], execute=lambda path, argv: calls.append(argv), clients=clients)
    captured = capsys.readouterr()
    return status, captured.out, captured.err.splitlines(), calls


def test_a_refused_trial_makes_no_aws_call(account: Loopback, capsys: pytest.CaptureFixture[str]) -> None:
    # The refusal comes before the preflight: no call, and no credentials error for a deploy that was never allowed.
    def no_calls(service: str, region: str) -> Any:
        raise AssertionError(f"no AWS call expected ({service})")

    status, out, err, calls = deploy(capsys, "--C", "epochs=1", "--", "--all", clients=no_calls)
    assert (status, out, calls) == (1, "", [])
    assert err == [
        "error: C= changes what config/default.json deploys (epochs 3 -> 1): change the file (and commit it), or "
        "deploy this trial on purpose with TRIAL=1"
    ]
    account.no_credentials()
    assert deploy(capsys, "--", "--all", "-c", "epochs=1")[2] == [
        "error: -c changes what config/default.json deploys (epochs 3 -> 1): change the file (and commit it), or "
        "deploy this trial on purpose with TRIAL=1"
    ]


def test_deploy_runs_the_preflight_on_its_own_settings_before_the_cli(
    account: Loopback, capsys: pytest.CaptureFixture[str]
) -> None:
    ready(account)
    status, out, err, calls = deploy(capsys, "--", "--all")
    assert (status, err) == (0, [])
    assert out.startswith(f"preflight for `make deploy`, account {ACCOUNT} in {REGION} (")
    assert [argv[1:] for argv in calls] == [["deploy", "-c", "env=default", "--all"]]
    # The trial's settings, from C= or from the CLI's arguments, are the ones checked; a failed check stops it.
    p5e = "training_instance_type=ml.p5e.48xlarge"
    for args in (["--C", p5e, "--"], ["--", "-c", p5e]):
        status, out, err, calls = deploy(capsys, "--trial", *args, "--all")
        assert (status, out, calls) == (1, "", [])
        assert err[0] == "note: deploying a trial, not config/default.json as committed"
        assert err[1:] == [
            'error: SageMaker has no quota "ml.p5e.48xlarge for training job usage" in us-east-1: the training job '
            "(1 x ml.p5e.48xlarge) cannot run on that instance type there; choose another instance type or region"
        ]


def test_deploy_with_the_preflight_skipped_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    def no_calls(service: str, region: str) -> Any:
        raise AssertionError(f"no AWS call expected ({service})")

    status, _, err, calls = deploy(capsys, "--skip-preflight", "--", "--all", clients=no_calls)
    assert (status, err, len(calls)) == (0, ["preflight skipped (SKIP_PREFLIGHT=1)"], 1)


@pytest.mark.parametrize(
    ("command", "runs"),
    [
        (["deploy"], "ops.cdk deploy --C '' -- --all"),
        (["deploy", "ENV=x", "C=epochs=1", "TRIAL=1"], "ops.cdk deploy --env 'x' --C 'epochs=1' --trial -- --all"),
        (["deploy", "SKIP_PREFLIGHT=1"], "ops.cdk deploy --C '' --skip-preflight -- --all"),
        (["train", "ENV=x", "ARGS=--epochs 1"], "ops.train --env 'x' --C '' --epochs 1"),
        (["train", "ARGS=--stop"], "ops.train --C '' --stop"),
        (["train", "SKIP_PREFLIGHT=1"], "ops.train --C '' --skip-preflight"),
        (
            ["preflight", "ENV=x", "C=use_spot=true", "ARGS=--for train"],
            "ops.preflight --env 'x' --C 'use_spot=true' --for train",
        ),
    ],
)  # fmt: skip
def test_make_leaves_the_preflight_to_the_command_that_spends(command: list[str], runs: str) -> None:
    # One process: the preflight runs inside ops.cdk deploy and ops.train, after deploy's refusal of a trial and with
    # the very settings (ENV=, C=, ARGS) and region the command then uses; a separate step saw neither (issue 12's
    # first version ran `ops.preflight` before the refusal, and without ARGS).
    make = shutil.which("make")
    assert make is not None
    dry_run = subprocess.run([make, "-n", *command], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    (line,) = [" ".join(line.split()) for line in dry_run.splitlines() if " -m ops." in line]
    assert line.endswith(f"python -m {runs}"), line
