"""Every expected failure of `make train`, `make invoke` and `make preflight` is one line naming what to do, with exit
status 1 and no traceback. Each case drives the command's entry point with the process environment an operator
would have: no credentials at all; every call sent to an address on loopback where nothing listens; and, for the
rest, moto on loopback (a stack that is not deployed, an endpoint that is missing or still being created, an IAM
user without permissions while moto enforces IAM). moto never throttles: for throttling the calls go to the
stand-in (fakes/aws_standin.py), which answers in each API's own protocol as a throttled AWS API does."""

from __future__ import annotations

import io
from collections.abc import Callable

import botocore.session
import pytest
from botocore.retries.standard import ThrottledRetryableChecker
from moto.backends import get_backend

from fakes.moto_server import ACCESS_KEY, ACCOUNT, REGION, SECRET_KEY
from ops import errors, invoke, preflight, train
from tests.ops.loopback import Loopback, unreachable_url

Command = Callable[[], int]
COMMANDS: dict[str, Command] = {
    "train": lambda: train.main(["--region", REGION], out=io.StringIO()),
    "invoke": lambda: invoke.main(["--prompt", "His Honour Judge Richards:"]),
    "preflight": lambda: preflight.main([]),
}


def one_line(capsys: pytest.CaptureFixture[str], status: int) -> str:
    captured = capsys.readouterr()
    assert status == 1, captured
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return captured.err.removeprefix("error: ").rstrip("\n")


@pytest.mark.parametrize("command", COMMANDS)
def test_no_credentials(account: Loopback, capsys: pytest.CaptureFixture[str], command: str) -> None:
    account.no_credentials()
    message = one_line(capsys, COMMANDS[command]())
    assert message == (
        "no AWS credentials found: configure them (aws configure, AWS_PROFILE or the AWS_* variables; aws sso login "
        "for SSO) and run again"
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_each_run_reads_the_credentials_in_place_then(
    account: Loopback, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    # Every run makes its own session (ops.aws.Clients): credentials added after a failed run are found by the next
    # one in the same process, as they would be by a new process. Only the cached service models are shared.
    account.no_credentials()
    assert one_line(capsys, COMMANDS[command]()).startswith("no AWS credentials found")
    account.credentials(ACCESS_KEY, SECRET_KEY)
    COMMANDS[command]()
    assert "credentials" not in capsys.readouterr().err


@pytest.mark.parametrize("command", COMMANDS)
def test_no_network(account: Loopback, capsys: pytest.CaptureFixture[str], command: str) -> None:
    url = unreachable_url()
    account.point_at(url, services=False)
    message = one_line(capsys, COMMANDS[command]())
    assert message == (
        f"cannot reach {url}/ (EndpointConnectionError): check the network connection, any proxy (HTTPS_PROXY) or "
        "AWS_ENDPOINT_URL, and run again"
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_throttled(account: Loopback, capsys: pytest.CaptureFixture[str], command: str) -> None:
    account.standin.state.throttle = True
    account.point_at(account.standin.url)
    message = one_line(capsys, COMMANDS[command]())
    operation = "GetCallerIdentity" if command == "preflight" else "DescribeStacks"
    assert message == (
        f"AWS throttled {operation} (Throttling) even after retries: wait a minute and run again (other tools "
        "calling the same API in this account and region share its rate)"
    )


@pytest.mark.parametrize("command", ["train", "invoke"])
def test_access_denied(account: Loopback, capsys: pytest.CaptureFixture[str], command: str) -> None:
    with account.denied():
        status = COMMANDS[command]()
    message = one_line(capsys, status)
    assert message.startswith("access denied to DescribeStacks: User: arn:aws:iam::123456789012:user/nobody-")
    assert message.endswith(
        "is not authorized to perform: cloudformation:DescribeStacks; run with credentials allowed to call it (ask "
        "for that permission, or pick another AWS_PROFILE)"
    )


def test_train_when_the_stack_is_not_deployed(account: Loopback, capsys: pytest.CaptureFixture[str]) -> None:
    message = one_line(capsys, COMMANDS["train"]())
    assert message == (
        f"the training stack LegalGptjTraining is not deployed in {REGION}: deploy it with `make deploy` (or name "
        "the region: -c region=... or --region)"
    )


def test_invoke_when_the_stack_is_not_deployed(account: Loopback, capsys: pytest.CaptureFixture[str]) -> None:
    message = one_line(capsys, COMMANDS["invoke"]())
    assert message == (
        f"stack LegalGptjServing is not deployed in {REGION}: run `make deploy` with an endpoint switched on, or pass "
        "--endpoint NAME"
    )


def test_invoke_a_missing_endpoint(account: Loopback, capsys: pytest.CaptureFixture[str]) -> None:
    status = invoke.main(["--prompt", "x", "--endpoint", "legal-gptj-gone"])
    assert one_line(capsys, status) == "endpoint legal-gptj-gone does not exist (deleted, or never deployed)"


def test_invoke_an_endpoint_still_being_created(account: Loopback, capsys: pytest.CaptureFixture[str]) -> None:
    sagemaker = account.client("sagemaker")
    name = f"legal-gptj-creating-{len(sagemaker.list_endpoints()['Endpoints'])}"
    sagemaker.create_model(
        ModelName=name,
        PrimaryContainer={"Image": "image"},
        ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/endpoint",
    )
    variant = {"VariantName": "all", "ModelName": name, "InstanceType": "ml.g4dn.12xlarge", "InitialInstanceCount": 1}
    sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    get_backend("sagemaker")[ACCOUNT][REGION].endpoints[name].endpoint_status = "Creating"  # type: ignore[index]
    message = one_line(capsys, invoke.main(["--prompt", "x", "--endpoint", name]))
    assert message == (
        f"endpoint {name} is still being created (status Creating): the first start takes 10-20 minutes, try again "
        "later"
    )


def test_every_throttling_code_botocore_retries_is_reported_as_throttling() -> None:
    assert set(ThrottledRetryableChecker._THROTTLED_ERROR_CODES) <= errors.THROTTLING_CODES


def test_an_unexpected_error_keeps_its_traceback() -> None:
    def bug() -> int:
        raise KeyError("a bug, not an operator's problem")

    with pytest.raises(KeyError):
        errors.run_command(bug)


def test_no_region_says_where_the_region_is_set(
    account: Loopback, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Settings live in config/<env>.json now: cdk.json refuses them (config/environment.py, check_cdk_json).
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(variable)
    status = errors.run_command(lambda: botocore.session.get_session().create_client("sagemaker") and 0)
    assert one_line(capsys, status) == (
        "no AWS region: set region in the settings file config/<env>.json (ENV= chooses it), or pass --region"
    )
