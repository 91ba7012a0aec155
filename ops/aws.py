"""What the operator commands share for talking to AWS: one botocore session, and a stack's outputs."""

from __future__ import annotations

import functools
from typing import Any

import botocore.loaders
import botocore.session
from botocore.exceptions import ClientError


@functools.cache
def botocore_session() -> botocore.session.Session:
    """One per process: the service models (SageMaker's is large) are parsed once, not once per client."""
    return botocore.session.get_session()


@functools.cache
def _shared_loader() -> botocore.loaders.Loader:
    return botocore.loaders.create_loader()


def fresh_botocore_session() -> botocore.session.Session:
    """A session that resolves credentials and configuration when it is used, as a new process would, but shares the
    process's parsed service models and endpoint data (parsing endpoints.json alone costs a fifth of a second)."""
    session = botocore.session.get_session()
    session.register_component("data_loader", _shared_loader())
    return session


def stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str] | None:
    """{OutputKey: OutputValue} of a deployed stack; None when the stack does not exist. Other errors propagate."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        details = error.response.get("Error", {})
        if details.get("Code") == "ValidationError" and "does not exist" in str(details.get("Message", "")):
            return None
        raise
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
