"""Finding and calling the GPT-J endpoints: the serving stack's outputs, the endpoint's status, the invocation.

What is wrong with the endpoints (not deployed, missing, still being created, failed, answering with an error)
becomes an `EndpointError` whose message is one line saying what to do; what is wrong with reaching AWS
(credentials, network, throttling, access) is left to `ops.errors`, which says the same for every command.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError, ReadTimeoutError

from ops import aws
from ops.aws import stack_outputs
from ops.errors import OperatorError, client_error_code, is_access_denied, one_line
from ops.lmi_request import ResponseError, generated_texts

# Must match stacks/app_builder.py and stacks/serving_stack.py (tests/ops/test_invoke.py checks both): kept as
# literals so that the command line does not import the CDK.
STACK_NAME = "LegalGptjServing"
OUTPUT_KEYS = {"base": "BaseEndpointName", "fine-tuned": "FineTunedEndpointName"}
SWITCHES = {"base": "deploy_base_endpoint=true", "fine-tuned": "fine_tuned_job=<training job name>"}
# An endpoint in these states still serves the configuration it had (SageMaker swaps fleets when it is done).
SERVING_STATES = {"InService", "Updating", "SystemUpdating"}
# SageMaker's real-time invocations time out after 60 s; a little more so that its own error arrives first.
READ_TIMEOUT_SECONDS = 70
# An endpoint's own error text is what the operator needs to read: more of it than ops.errors keeps of AWS's.
_ANSWER_LIMIT = 500


class EndpointError(OperatorError):
    """An endpoint that cannot be found or called, or a call that failed. The message is one line."""


@dataclass(frozen=True)
class Clients:
    """The three clients `make invoke` calls, from one command run's ops.aws.Clients."""

    cloudformation: Any
    sagemaker: Any
    runtime: Any

    @classmethod
    def create(cls, region: str, endpoint_url: str | None = None) -> Clients:
        """Clients for one region; `endpoint_url` points all three at one address (a local stand-in, a proxy)."""
        made = aws.Clients(endpoint_url=endpoint_url, read_timeout=READ_TIMEOUT_SECONDS)
        return cls(made("cloudformation", region), made("sagemaker", region), made("sagemaker-runtime", region))


def deployed_endpoints(clients: Clients) -> dict[str, str]:
    """{"base": name, "fine-tuned": name} for the endpoints the serving stack has (none, one or both)."""
    outputs = stack_outputs(clients.cloudformation, STACK_NAME)
    if outputs is None:
        raise EndpointError(
            f"stack {STACK_NAME} is not deployed in {clients.cloudformation.meta.region_name}: "
            "run `make deploy` with an endpoint switched on, or pass --endpoint NAME"
        )
    return {label: outputs[key] for label, key in OUTPUT_KEYS.items() if key in outputs}


def resolve(choice: str | None, deployed: dict[str, str]) -> tuple[str, str]:
    """(label, endpoint name) for --endpoint: base, fine-tuned, or nothing (the fine-tuned one if deployed)."""
    if choice is None:
        choice = "fine-tuned" if "fine-tuned" in deployed else "base"
        if not deployed:
            raise EndpointError(
                f"stack {STACK_NAME} has no endpoint: deploy with {SWITCHES['base']} or {SWITCHES['fine-tuned']}"
            )
    if choice not in deployed:
        raise EndpointError(f"no {choice} endpoint is deployed: deploy with {SWITCHES[choice]}")
    return choice, deployed[choice]


def check_serving(clients: Clients, name: str) -> str | None:
    """Fail unless the endpoint can answer now; return a warning to print when it answers but is changing."""
    try:
        endpoint = clients.sagemaker.describe_endpoint(EndpointName=name)
    except ClientError as error:
        code, message, _ = client_error_code(error)
        if code == "ValidationException" and "Could not find endpoint" in message:
            raise EndpointError(f"endpoint {name} does not exist (deleted, or never deployed)") from None
        if is_access_denied(error):
            return None  # may invoke without being allowed to describe: let the invocation tell
        raise
    status = endpoint["EndpointStatus"]
    if status == "Creating":
        raise EndpointError(
            f"endpoint {name} is still being created (status Creating): the first start takes 10-20 minutes, "
            "try again later"
        )
    if status == "Failed":
        reason = endpoint.get("FailureReason", "no reason given")
        raise EndpointError(f"endpoint {name} failed: {reason}")
    if status not in SERVING_STATES:
        raise EndpointError(f"endpoint {name} is not serving (status {status})")
    if status != "InService":
        return f"endpoint {name} is {status}: it answers with its previous configuration until the update is done"
    return None


def invoke(clients: Clients, name: str, body: dict[str, Any]) -> list[str]:
    """Send one request body; the generated texts of the answer."""
    try:
        response = clients.runtime.invoke_endpoint(
            EndpointName=name,
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps(body).encode(),
        )
    except ClientError as error:
        code, message, _ = client_error_code(error)
        if code == "ModelError":
            status = error.response.get("OriginalStatusCode", "?")
            original = error.response.get("OriginalMessage") or message
            raise EndpointError(
                f"endpoint {name} answered with an error ({status}): {one_line(original, limit=_ANSWER_LIMIT)}"
            ) from None
        if code == "ValidationError" and "not found" in message:
            raise EndpointError(f"endpoint {name} does not exist (deleted, or never deployed)") from None
        raise
    except ReadTimeoutError:
        raise EndpointError(
            f"endpoint {name} did not answer within {READ_TIMEOUT_SECONDS} s: ask for fewer tokens (--max-length, "
            f"--max-new-tokens), or see its log group /aws/sagemaker/Endpoints/{name}"
        ) from None
    try:
        return generated_texts(response["Body"].read())
    except (ResponseError, ValueError) as error:
        raise EndpointError(f"endpoint {name}: {one_line(error, limit=_ANSWER_LIMIT)}") from None
