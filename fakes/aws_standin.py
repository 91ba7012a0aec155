"""A loopback stand-in for the AWS calls `make preflight` makes that moto 5.2.5 does not implement, and for throttling.

What moto lacks: its Service Quotas backend knows only the vpc service's default quotas (moto/servicequotas/models.py:
`ListAWSDefaultServiceQuotas` and `GetServiceQuota` for ServiceCode vpc, else NoSuchResourceException; no
`ListServiceQuotas`), so no SageMaker quota can be set; and its Lambda has no `GetAccountSettings` (404). Nor does
any moto service ever throttle.

What is real here: the wire protocols, as botocore's service models define them and as boto3 then parses them:
Service Quotas is JSON 1.1 (`POST /`, `X-Amz-Target: ServiceQuotasV20190624.<Operation>`), Lambda's
GetAccountSettings is REST-JSON (`GET /2016-08-19/account-settings`); errors carry `__type` (JSON) or
`x-amzn-ErrorType` (REST-JSON), and a throttled query-protocol call (CloudFormation, STS) answers the query
protocol's XML error. ListServiceQuotas and ListAWSDefaultServiceQuotas page with `MaxResults`/`NextToken` as the
API reference says (100 by default; `page_size` makes pages smaller so that callers must follow `NextToken`).

What is not real: the values (a test sets them: `applied` for the account's applied quotas, `defaults` for AWS's
defaults, `concurrency` for Lambda's account limits); which quotas ListServiceQuotas leaves out (AWS documents that
quotas without an applied value are not listed; here exactly those not in `applied` are missing); no signatures, no
IAM, one account and region; only the operations above, anything else answers 400 `UnknownOperationException`.
With `throttle = True` every request is answered as a throttled API answers it.

The HTTP server itself (`LoopbackServer`) answers with any route; tests/ops/test_invoke.py gives it one that speaks
CloudFormation DescribeStacks, SageMaker DescribeEndpoint and SageMaker Runtime InvokeEndpoint (moto cannot play an
LMI container's answers and errors), and says there what is real.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

REGION = "us-east-1"
ACCOUNT = "123456789012"
_TARGET_PREFIX = "ServiceQuotasV20190624."
_SERVICE_NAMES = {"sagemaker": "Amazon SageMaker", "lambda": "AWS Lambda"}
_DEFAULT_PAGE = 100


@dataclass(frozen=True)
class Quota:
    service: str
    code: str
    name: str
    value: float

    def to_json(self) -> dict[str, Any]:
        return {
            "ServiceCode": self.service,
            "ServiceName": _SERVICE_NAMES.get(self.service, self.service),
            "QuotaArn": f"arn:aws:servicequotas:{REGION}:{ACCOUNT}:{self.service}/{self.code}",
            "QuotaCode": self.code,
            "QuotaName": self.name,
            "Value": self.value,
            "Unit": "None",
            "Adjustable": True,
            "GlobalQuota": False,
        }


@dataclass
class LambdaConcurrency:
    concurrent_executions: int = 1000
    unreserved: int = 1000


@dataclass
class StandIn:
    """The state the server answers from; change it between calls."""

    applied: list[Quota] = field(default_factory=list)
    defaults: list[Quota] = field(default_factory=list)
    concurrency: LambdaConcurrency = field(default_factory=LambdaConcurrency)
    throttle: bool = False
    page_size: int = _DEFAULT_PAGE
    calls: list[str] = field(default_factory=list)


Answer = tuple[int, dict[str, str], bytes]


def _json(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Answer:
    return status, {"Content-Type": "application/x-amz-json-1.1", **(headers or {})}, json.dumps(payload).encode()


def _json_error(code: str, message: str, status: int = 400) -> Answer:
    return _json({"__type": code, "message": message}, status)


def _page(quotas: list[Quota], service: str, params: dict[str, Any], page_size: int) -> Answer:
    matching = [q for q in quotas if q.service == service]
    if service not in _SERVICE_NAMES:
        return _json_error("NoSuchResourceException", f"The request failed because the service {service} is unknown.")
    size = min(int(params.get("MaxResults") or _DEFAULT_PAGE), page_size)
    start = int(params.get("NextToken") or 0)
    payload: dict[str, Any] = {"Quotas": [q.to_json() for q in matching[start : start + size]]}
    if start + size < len(matching):
        payload["NextToken"] = str(start + size)
    return _json(payload)


def _throttled(request: Request) -> Answer:
    if request.headers.get("X-Amz-Target"):
        return _json_error("ThrottlingException", "Rate exceeded")
    if b"Action=" in request.body:
        error = (
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
            "<RequestId>r-1</RequestId></ErrorResponse>"
        )
        return 400, {"Content-Type": "text/xml"}, error.encode()
    return (
        429,
        {"Content-Type": "application/json", "x-amzn-ErrorType": "TooManyRequestsException"},
        (json.dumps({"message": "Rate exceeded", "Type": "User"}).encode()),
    )


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query
    query: str
    headers: Message
    body: bytes


Route = Callable[[Request], Answer]


class LoopbackServer:
    """`with LoopbackServer(route) as server:` answers every GET and POST on 127.0.0.1 (a random port) at
    `server.url` with `route(request)`: an HTTP/1.1 server that speaks whatever the route answers. The stand-in below
    is one; tests that need another AWS API's answers (tests/ops/test_invoke.py) give their own route."""

    def __init__(self, route: Route) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(route))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _handler_for(route: Route) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _serve(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            url = urllib.parse.urlsplit(self.path)
            status, headers, content = route(Request(method, url.path, url.query, self.headers, body))
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(content))}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(content)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

    return Handler


def answer(standin: StandIn, request: Request) -> Answer:
    """The stand-in's answer to one request, from its state."""
    method, path = request.method, request.path
    target = request.headers.get("X-Amz-Target", "")
    standin.calls.append(target.removeprefix(_TARGET_PREFIX) or f"{method} {path}")
    if standin.throttle:
        return _throttled(request)
    if method == "GET" and path.rstrip("/") == "/2016-08-19/account-settings":
        limits = standin.concurrency
        return _json(
            {
                "AccountLimit": {
                    "TotalCodeSize": 80_530_636_800,
                    "CodeSizeUnzipped": 262_144_000,
                    "CodeSizeZipped": 52_428_800,
                    "ConcurrentExecutions": limits.concurrent_executions,
                    "UnreservedConcurrentExecutions": limits.unreserved,
                },
                "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": 0},
            }
        )
    if method == "POST" and target.startswith(_TARGET_PREFIX):
        params = json.loads(request.body or b"{}")
        operation = target.removeprefix(_TARGET_PREFIX)
        service = str(params.get("ServiceCode", ""))
        if operation == "ListServiceQuotas":
            return _page(standin.applied, service, params, standin.page_size)
        if operation == "ListAWSDefaultServiceQuotas":
            return _page(standin.defaults, service, params, standin.page_size)
    return _json_error("UnknownOperationException", f"the stand-in does not answer {method} {path} {target}")


class StandInServer(LoopbackServer):
    """`with StandInServer() as server:` serves `server.state` at `server.url`; `server.reset()` gives a fresh state
    (the server outlives each test, its state does not)."""

    def __init__(self) -> None:
        self.state = StandIn()
        super().__init__(lambda request: answer(self.state, request))

    def reset(self) -> StandIn:
        self.state = StandIn()
        return self.state
