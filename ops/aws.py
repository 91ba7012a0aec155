"""What the operator commands share for talking to AWS: the clients of one command run, and a stack's outputs."""

from __future__ import annotations

import functools
from typing import Any, Protocol

import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

from ops.errors import client_error_code


class ClientFactory(Protocol):
    """(service, region) -> a client: what the commands call AWS through (tests pass their own)."""

    def __call__(self, service: str, region: str) -> Any: ...


@functools.cache
def _shared_loader() -> botocore.loaders.Loader:
    return botocore.loaders.create_loader()


def fresh_botocore_session() -> botocore.session.Session:
    """A session that resolves credentials and configuration when it is used, as a new process would, but shares the
    process's parsed service models and endpoint data (parsing endpoints.json alone costs a fifth of a second;
    SageMaker's model is large)."""
    session = botocore.session.get_session()
    session.register_component("data_loader", _shared_loader())
    return session


class Clients:
    """The clients of one command run: one botocore session made with the run, so that its credentials and
    configuration are the ones in place when the command runs (a session kept for the whole process would hold on to
    the first ones it found), and one client per service and region, made on first use. Standard retries: 3
    attempts, or AWS_MAX_ATTEMPTS and the profile's max_attempts. Endpoints come from the usual configuration
    (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>) unless `endpoint_url` sends every call to one address."""

    def __init__(self, *, endpoint_url: str | None = None, read_timeout: float | None = None) -> None:
        self._session = fresh_botocore_session()
        timeouts = {} if read_timeout is None else {"read_timeout": read_timeout}
        self._config = Config(retries={"mode": "standard"}, **timeouts)
        self._endpoint_url = endpoint_url
        self._made: dict[tuple[str, str], Any] = {}

    def __call__(self, service: str, region: str) -> Any:
        if (service, region) not in self._made:
            self._made[service, region] = self._session.create_client(
                service, region_name=region, endpoint_url=self._endpoint_url, config=self._config
            )
        return self._made[service, region]


def describe_stack(cloudformation: Any, stack_name: str) -> dict[str, Any] | None:
    """DescribeStacks' description of a stack; None when the stack does not exist. Other errors propagate."""
    try:
        return dict(cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0])
    except ClientError as error:
        code, message, _ = client_error_code(error)
        if code == "ValidationError" and "does not exist" in message:
            return None
        raise


def stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str] | None:
    """{OutputKey: OutputValue} of a deployed stack; None when the stack does not exist. Other errors propagate."""
    stack = describe_stack(cloudformation, stack_name)
    if stack is None:
        return None
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
