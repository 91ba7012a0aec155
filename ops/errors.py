"""One line for every failure an operator command can expect, saying what to do; never a traceback.

`run_command` runs a command's body and turns what AWS and botocore raise (no credentials, an unreachable endpoint,
throttling, access denied, expired credentials, any other refusal) and the commands' own `OperatorError`s into
`error: <one line>` on stderr and exit status 1. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoAuthTokenError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
    SSOError,
    TokenRetrievalError,
)

# botocore's standard retry mode treats these as throttling (botocore.retries.standard.ThrottledRetryableChecker;
# tests/ops/test_operator_errors.py checks that this set holds all of them), 429 included.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
)
CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
    }
)
_CONFIGURE = "configure them (aws configure, AWS_PROFILE or the AWS_* variables; aws sso login for SSO) and run again"
_MESSAGE_LIMIT = 300


class OperatorError(Exception):
    """A failure the operator can act on; the message is one line saying what is wrong and what to do."""


def one_line(text: object, limit: int = _MESSAGE_LIMIT) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


def client_error_code(error: ClientError) -> tuple[str, str, int]:
    """(code, message, HTTP status) of an AWS error answer."""
    details = error.response.get("Error", {})
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(details.get("Code", "")), str(details.get("Message", "")), int(status or 0)


def is_throttling(error: ClientError) -> bool:
    code, _, status = client_error_code(error)
    return code in THROTTLING_CODES or status == 429


def is_access_denied(error: ClientError) -> bool:
    code, _, status = client_error_code(error)
    return code in ACCESS_DENIED_CODES or (status == 403 and code not in CREDENTIAL_CODES)


def describe_client_error(error: ClientError) -> str:
    code, message, status = client_error_code(error)
    operation = error.operation_name
    if code in CREDENTIAL_CODES:
        return (
            f"AWS rejected the credentials ({code}: {one_line(message)}): they are expired or wrong; refresh them "
            "(aws sso login, new keys, or another AWS_PROFILE) and run again"
        )
    if is_throttling(error):
        return (
            f"AWS throttled {operation} ({code or status}) even after retries: wait a minute and run again (other "
            "tools calling the same API in this account and region share its rate)"
        )
    if is_access_denied(error):
        return (
            f"access denied to {operation}: {one_line(message) or code}; run with credentials allowed to call it "
            "(ask for that permission, or pick another AWS_PROFILE)"
        )
    return f"AWS refused {operation}: {code or status}: {one_line(message)}"


def describe(error: BotoCoreError | ClientError) -> str:
    """The one-line message for a failure an operator can meet when calling AWS."""
    if isinstance(error, ClientError):
        return describe_client_error(error)
    if isinstance(error, NoCredentialsError):
        return f"no AWS credentials found: {_CONFIGURE}"
    if isinstance(error, PartialCredentialsError):
        return f"incomplete AWS credentials ({one_line(error)}): {_CONFIGURE}"
    if isinstance(error, ProfileNotFound):
        return f"{one_line(error)}: set AWS_PROFILE to one of `aws configure list-profiles`, or unset it"
    if isinstance(error, CredentialRetrievalError | TokenRetrievalError | SSOError | NoAuthTokenError):
        return f"the AWS credentials could not be loaded ({one_line(error)}): {_CONFIGURE}"
    if isinstance(error, NoRegionError):
        return "no AWS region: set region in the settings file config/<env>.json (ENV= chooses it), or pass --region"
    if isinstance(
        error,
        EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError | ConnectionClosedError | ProxyConnectionError
        | SSLError,
    ):  # fmt: skip
        url = getattr(error, "kwargs", {}).get("endpoint_url", "AWS")
        return (
            f"cannot reach {url} ({type(error).__name__}): check the network connection, any proxy "
            "(HTTPS_PROXY) or AWS_ENDPOINT_URL, and run again"
        )
    return f"the AWS call failed: {one_line(error)}"


def run_command(
    body: Callable[[], int], *, expected: tuple[type[Exception], ...] = (), err: TextIO | None = None
) -> int:
    """`body()`'s exit status; for an expected failure, `error: <one line>` on stderr and 1 (130 on Ctrl-C)."""
    stream = err or sys.stderr
    own: tuple[type[Exception], ...] = (OperatorError, *expected)
    try:
        return body()
    except KeyboardInterrupt:
        print("\ninterrupted", file=stream)
        return 130
    except own as error:
        message = str(error)
    except (BotoCoreError, ClientError) as error:
        message = describe(error)
    print(f"error: {one_line(message, limit=2000)}", file=stream)
    return 1
