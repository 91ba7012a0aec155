"""What the operator commands share for talking to AWS: one botocore session, and a stack's outputs."""

from __future__ import annotations

import functools
from typing import Any

import botocore.session
from botocore.exceptions import ClientError


@functools.cache
def botocore_session() -> botocore.session.Session:
    """One per process: the service models (SageMaker's is large) are parsed once, not once per client."""
    return botocore.session.get_session()


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
