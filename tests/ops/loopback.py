"""An AWS account on loopback for the operator commands: moto in server mode for what it implements, the stand-in
(fakes/aws_standin.py) for Service Quotas and Lambda's account settings, and the process environment that sends
every boto3 client there with dummy credentials, one attempt per call and no real AWS configuration.

Also what the failure tests need: an address where nothing listens, no credentials at all, and credentials that moto
refuses (an IAM user without policies, with moto's IAM enforcement switched on through its /moto-api/reset-auth);
and what the preflight's tests need: an account that is ready for the default settings (`ready`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from fakes.aws_standin import Quota, StandIn, StandInServer
from fakes.moto_server import ACCESS_KEY, REGION, SECRET_KEY, MotoServer
from ops.preflight import TOOLKIT_STACK, TRAINING_LOG_GROUP

CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
)


@dataclass
class Loopback:
    moto: MotoServer
    standin: StandInServer
    monkeypatch: pytest.MonkeyPatch

    def client(self, service: str) -> Any:
        """A client of moto with the fixture's own credentials (making one costs a tenth of a second: reused)."""
        return _moto_client(self.moto, service)

    def point_at(self, url: str, *, services: bool = True) -> None:
        """Every AWS call to `url`; with `services`, Service Quotas and Lambda to the stand-in."""
        self.monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        for variable in ("AWS_ENDPOINT_URL_SERVICE_QUOTAS", "AWS_ENDPOINT_URL_LAMBDA"):
            if services:
                self.monkeypatch.setenv(variable, self.standin.url)
            else:
                self.monkeypatch.delenv(variable, raising=False)

    def no_credentials(self) -> None:
        for variable in CREDENTIAL_VARIABLES:
            self.monkeypatch.delenv(variable, raising=False)

    def credentials(self, access_key: str, secret_key: str) -> None:
        self.monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key)
        self.monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)

    @contextlib.contextmanager
    def denied(self) -> Iterator[None]:
        """Credentials of a user without any policy, with moto enforcing IAM, for the block's duration."""
        iam = self.client("iam")
        name = f"nobody-{len(iam.list_users()['Users'])}"
        iam.create_user(UserName=name)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        self.credentials(key["AccessKeyId"], key["SecretAccessKey"])
        _moto_auth(self.moto, "0")  # authenticate every request from now on
        try:
            yield
        finally:
            _moto_auth(self.moto, "inf")
            self.credentials(ACCESS_KEY, SECRET_KEY)


@functools.cache
def _moto_client(moto: MotoServer, service: str) -> Any:
    return moto.client(service)


def _moto_auth(moto: MotoServer, count: str) -> None:
    request = urllib.request.Request(
        f"{moto.endpoint_url}/moto-api/reset-auth", data=count.encode(), headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.loads(answer.read())["status"] == "ok"


def unreachable_url() -> str:
    """An address on loopback where nothing listens (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def environment(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    settings: dict[str, Any] = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/nonexistent/config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
        "AWS_EC2_METADATA_DISABLED": "true",  # never ask an instance metadata service for credentials
        "AWS_MAX_ATTEMPTS": "1",  # failures at once: no retry waits
        "AWS_RETRY_MODE": "standard",
        "AWS_ENDPOINT_URL": moto.endpoint_url,
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)


PARAMETER = "/cdk-bootstrap/hnb659fds/version"
P3DN_TRAINING = Quota("sagemaker", "L-4A2E0F7B", "ml.p3dn.24xlarge for training job usage", 1)
P3DN_SPOT = Quota("sagemaker", "L-7C9D1E22", "ml.p3dn.24xlarge for spot training job usage", 0)
G5_ENDPOINT = Quota("sagemaker", "L-65C4BD00", "ml.g5.12xlarge for endpoint usage", 4)
OTHERS = [Quota("sagemaker", f"L-0000{n:04d}", f"ml.m5.{n}xlarge for processing job usage", 4) for n in range(1, 6)]


def bootstrapped(account: Loopback, version: str = "21") -> None:
    cfn = account.client("cloudformation")
    try:
        cfn.describe_stacks(StackName=TOOLKIT_STACK)
    except cfn.exceptions.ClientError:
        template = {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {"BootstrapVersion": {"Value": "21"}},
        }
        cfn.create_stack(StackName=TOOLKIT_STACK, TemplateBody=json.dumps(template))
    account.client("ssm").put_parameter(Name=PARAMETER, Value=version, Type="String", Overwrite=True)


def not_bootstrapped(account: Loopback) -> None:
    account.client("cloudformation").delete_stack(StackName=TOOLKIT_STACK)
    ssm = account.client("ssm")
    with contextlib.suppress(ssm.exceptions.ParameterNotFound):
        ssm.delete_parameter(Name=PARAMETER)


def training_log_group(account: Loopback, *, exists: bool = True) -> None:
    logs = account.client("logs")
    if exists:
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=TRAINING_LOG_GROUP)
    else:
        with contextlib.suppress(logs.exceptions.ResourceNotFoundException):
            logs.delete_log_group(logGroupName=TRAINING_LOG_GROUP)


def default_quotas(state: StandIn) -> StandIn:
    """The SageMaker quotas the default settings need (one p3dn for training, g5 endpoints), two to a page."""
    state.applied = [*OTHERS[:3], P3DN_TRAINING, *OTHERS[3:], G5_ENDPOINT]
    state.defaults = [*OTHERS, P3DN_TRAINING, P3DN_SPOT, G5_ENDPOINT]
    state.page_size = 2
    return state


def ready(account: Loopback) -> StandIn:
    """An account where the default configuration can deploy and train."""
    bootstrapped(account)
    training_log_group(account)
    return default_quotas(account.standin.state)
