"""`make invoke` against a real HTTP server on 127.0.0.1 that speaks the three AWS APIs the client uses:

* CloudFormation DescribeStacks (query protocol, XML) for the serving stack's outputs;
* SageMaker DescribeEndpoint (JSON 1.1 protocol) for the endpoint's status;
* SageMaker Runtime InvokeEndpoint (REST-JSON, `POST /endpoints/{name}/invocations`), answering as the LMI
  container does, or failing as SageMaker does when the container answers with an error (ModelError).

The HTTP server is fakes/aws_standin.py's; the answers are written here from each API's documented shapes (the
query protocol's XML, JSON 1.1, REST-JSON with `x-amzn-ErrorType`), the values are the tests'. boto3 talks to it
through `--endpoint-url` with dummy credentials; nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest

from config.environment import read_environment
from fakes.aws_standin import Answer, LoopbackServer, Request
from ops import invoke as cli
from ops.runtime import OUTPUT_KEYS, STACK_NAME

ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-2"
BASE = "LegalGptjServing-base"
FINE_TUNED = "LegalGptjServing-fine-tuned"
PROMPT = "His Honour Judge Richards:"


def json_answer(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Answer:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(payload).encode()


def model_error(status: int, container_message: str, name: str) -> Answer:
    """What SageMaker Runtime returns when the container answers `status`: HTTP 424 and a ModelError."""
    return json_answer(
        {
            "ErrorCode": "CLIENT_ERROR_FROM_MODEL",
            "LogStreamArn": f"arn:aws:logs:{REGION}:123456789012:log-group:/aws/sagemaker/Endpoints/{name}",
            "Message": f'Received client error ({status}) from primary with message "{container_message}". '
            f"See https://{REGION}.console.aws.amazon.com/cloudwatch/home for more information.",
            "OriginalMessage": container_message,
            "OriginalStatusCode": status,
        },
        status=424,
        headers={"x-amzn-ErrorType": "ModelError:http://internal.amazon.com/coral/com.amazonaws.sagemaker/"},
    )


@dataclass
class FakeAws:
    """State of the stand-in: the stack's outputs, each endpoint's status and how its container answers."""

    outputs: dict[str, str] | None = field(default_factory=lambda: {"BaseEndpointName": BASE})
    statuses: dict[str, str] = field(default_factory=lambda: {BASE: "InService", FINE_TUNED: "InService"})
    containers: dict[str, Callable[[dict[str, Any]], Answer]] = field(default_factory=dict)
    invocations: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    url: str = ""

    def container(self, name: str, payload: dict[str, Any]) -> Answer:
        if name in self.containers:
            return self.containers[name](payload)
        # As LMI's async vLLM handler answers a non-streaming request in the LMI schema.
        prefix = payload["inputs"] if payload["parameters"].get("return_full_text") else ""
        return json_answer({"generated_text": f"{prefix} [{name} continues]"})


def describe_stacks(fake: FakeAws) -> Answer:
    if fake.outputs is None:
        error = (
            "<ErrorResponse xmlns='http://cloudformation.amazonaws.com/doc/2010-05-15/'><Error><Type>Sender</Type>"
            f"<Code>ValidationError</Code><Message>Stack with id {STACK_NAME} does not exist</Message></Error>"
            "<RequestId>r-1</RequestId></ErrorResponse>"
        )
        return 400, {"Content-Type": "text/xml"}, error.encode()
    members = "".join(
        f"<member><OutputKey>{escape(k)}</OutputKey><OutputValue>{escape(v)}</OutputValue></member>"
        for k, v in fake.outputs.items()
    )
    body = (
        "<DescribeStacksResponse xmlns='http://cloudformation.amazonaws.com/doc/2010-05-15/'><DescribeStacksResult>"
        f"<Stacks><member><StackName>{STACK_NAME}</StackName><StackId>arn:aws:cloudformation:{REGION}:123456789012:"
        f"stack/{STACK_NAME}/1</StackId><CreationTime>2026-01-01T00:00:00Z</CreationTime>"
        f"<StackStatus>UPDATE_COMPLETE</StackStatus><Outputs>{members}</Outputs></member></Stacks>"
        "</DescribeStacksResult><ResponseMetadata><RequestId>r-2</RequestId></ResponseMetadata></DescribeStacksResponse>"
    )
    return 200, {"Content-Type": "text/xml"}, body.encode()


def describe_endpoint(fake: FakeAws, name: str) -> Answer:
    status = fake.statuses.get(name)
    if status is None:
        return json_answer(
            {"__type": "ValidationException", "message": f'Could not find endpoint "{name}".'}, status=400
        )
    description: dict[str, Any] = {
        "EndpointName": name,
        "EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/{name.lower()}",
        "EndpointConfigName": f"{name}-config",
        "EndpointStatus": status,
        "CreationTime": 1767225600,
        "LastModifiedTime": 1767225600,
    }
    if status == "Failed":
        description["FailureReason"] = "The primary container did not pass the ping health check."
    return json_answer(description)


def answer(fake: FakeAws, request: Request) -> Answer:
    """The three APIs' answers from `fake`, the state of the test that runs."""
    path = urllib.parse.unquote(request.path)
    target = request.headers.get("X-Amz-Target", "")
    if path.startswith("/endpoints/") and path.endswith("/invocations"):
        name = path.split("/")[2]
        fake.calls.append(f"InvokeEndpoint {name}")
        payload = json.loads(request.body)
        fake.invocations.append((name, dict(request.headers), payload))
        if name in fake.statuses:
            return fake.container(name, payload)
        return json_answer(
            {"message": f"Endpoint {name} of account 123456789012 not found."},
            status=400,
            headers={"x-amzn-ErrorType": "ValidationError:http://internal.amazon.com/coral/"},
        )
    if target == "SageMaker.DescribeEndpoint":
        name = json.loads(request.body)["EndpointName"]
        fake.calls.append(f"DescribeEndpoint {name}")
        return describe_endpoint(fake, name)
    if urllib.parse.parse_qs(request.body.decode()).get("Action") == ["DescribeStacks"]:
        fake.calls.append("DescribeStacks")
        return describe_stacks(fake)
    return json_answer({"message": f"unexpected request {request.method} {request.path} {target}"}, status=501)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[LoopbackServer, list[FakeAws]]]:
    """Requests go to `holder[0]`: the server outlives each test, its state does not."""
    holder: list[FakeAws] = [FakeAws()]
    with LoopbackServer(lambda request: answer(holder[0], request)) as running:
        yield running, holder


@pytest.fixture
def aws(server: tuple[LoopbackServer, list[FakeAws]], monkeypatch: pytest.MonkeyPatch) -> FakeAws:
    running, holder = server
    holder[0] = FakeAws(url=running.url)
    for key, value in dummy_environment().items():
        monkeypatch.setenv(key, value)
    return holder[0]


def dummy_environment() -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": "ap-south-1",  # not where the endpoints are: the settings file or --region says that
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def run(aws: FakeAws, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["--prompt", PROMPT, "--endpoint-url", aws.url, "--region", REGION, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- happy paths ----------------------------------------------------------------------------------------------


def test_the_command_line_does_not_import_the_cdk() -> None:
    """Importing the CDK starts its Node.js process (jsii): `make invoke` has no use for it (ops/runtime.py)."""
    code = "import sys, ops.invoke; assert 'aws_cdk' not in sys.modules, 'ops.invoke imported the CDK'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_default_asks_the_deployed_endpoint_with_the_notebooks_parameters(
    aws: FakeAws, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(aws, capsys)
    assert (code, err) == (0, "")
    assert out == f"{PROMPT} [{BASE} continues]\n"
    assert aws.calls == ["DescribeStacks", f"DescribeEndpoint {BASE}", f"InvokeEndpoint {BASE}"]
    (name, headers, payload), *_ = aws.invocations
    assert name == BASE
    assert headers["Content-Type"] == "application/json"
    assert headers["Accept"] == "application/json"
    assert payload == {
        "inputs": PROMPT,
        "parameters": {
            "max_new_tokens": 200,
            "do_sample": True,
            "top_k": 250,
            "top_p": 0.8,
            "temperature": 1.0,
            "return_full_text": True,
        },
    }


def test_fine_tuned_is_the_default_once_deployed(aws: FakeAws, capsys: pytest.CaptureFixture[str]) -> None:
    aws.outputs = {"BaseEndpointName": BASE, "FineTunedEndpointName": FINE_TUNED}
    code, out, _ = run(aws, capsys, "--no-full-text")
    assert code == 0
    assert out == f" [{FINE_TUNED} continues]\n"


def test_compare_asks_base_then_fine_tuned(aws: FakeAws, capsys: pytest.CaptureFixture[str]) -> None:
    aws.outputs = {"BaseEndpointName": BASE, "FineTunedEndpointName": FINE_TUNED}
    code, out, _ = run(aws, capsys, "--compare", "--max-new-tokens", "50", "--no-do-sample")
    assert code == 0
    assert out == (
        f"=== base ({BASE}) ===\n{PROMPT} [{BASE} continues]\n\n"
        f"=== fine-tuned ({FINE_TUNED}) ===\n{PROMPT} [{FINE_TUNED} continues]\n"
    )
    assert [name for name, _, _ in aws.invocations] == [BASE, FINE_TUNED]
    for _, _, payload in aws.invocations:
        assert payload["parameters"] == {"max_new_tokens": 50, "do_sample": False, "return_full_text": True}


def test_an_endpoint_by_name_skips_the_stack(aws: FakeAws, capsys: pytest.CaptureFixture[str]) -> None:
    aws.outputs = None
    code, out, _ = run(aws, capsys, "--endpoint", FINE_TUNED, "--num-return-sequences", "3", "--top-k", "40")
    assert code == 0
    assert out.split(f"\n{'-' * 65}\n") == [f"{PROMPT} [{FINE_TUNED} continues]"] * 2 + [
        f"{PROMPT} [{FINE_TUNED} continues]\n"
    ]
    assert "DescribeStacks" not in aws.calls
    assert len(aws.invocations) == 3, "one request per returned sequence"
    assert all(payload["parameters"]["top_k"] == 40 for _, _, payload in aws.invocations)


@pytest.mark.parametrize(
    "answer",
    [
        [{"generated_text": "tgi-compat form"}],
        [[{"generated_text": "notebook form"}]],
        {"generated_texts": ["jumpstart form"]},
        {"choices": [{"index": 0, "text": "openai form"}]},
    ],
)
def test_other_answer_shapes_are_understood(aws: FakeAws, capsys: pytest.CaptureFixture[str], answer: object) -> None:
    aws.containers[BASE] = lambda _: json_answer(answer)
    code, out, _ = run(aws, capsys, "--endpoint", "base")
    assert code == 0
    assert out.endswith(" form\n")


def test_an_updating_endpoint_answers_with_a_warning(aws: FakeAws, capsys: pytest.CaptureFixture[str]) -> None:
    aws.statuses[BASE] = "Updating"
    code, out, err = run(aws, capsys)
    assert code == 0 and out
    assert err == (
        f"warning: endpoint {BASE} is Updating: it answers with its previous configuration until the update is done\n"
    )


# --- error paths: one line on stderr, exit 1 ------------------------------------------------------------------


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0].removeprefix("error: ")


def test_stack_not_deployed(aws: FakeAws, capsys: pytest.CaptureFixture[str]) -> None:
    aws.outputs = None
    code, out, err = run(aws, capsys)
    assert (code, out) == (1, "")
    assert one_error_line(err).startswith(f"stack {STACK_NAME} is not deployed in {REGION}")


def test_stack_without_endpoints(aws: FakeAws, capsys: pytest.CaptureFixture[str]) -> None:
    aws.outputs = {"AlarmTopicArn": "arn:aws:sns:eu-west-2:123456789012:alarms"}
    code, _, err = run(aws, capsys)
    assert code == 1
    assert "has no endpoint: deploy with deploy_base_endpoint=true" in one_error_line(err)


def test_asking_for_an_endpoint_that_is_switched_off(aws: FakeAws, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(aws, capsys, "--compare")
    assert code == 1
    assert one_error_line(err) == "no fine-tuned endpoint is deployed: deploy with fine_tuned_job=<training job name>"
    assert aws.invocations == [], "nothing is invoked before every endpoint is known to exist"


def test_missing_endpoint(aws: FakeAws, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(aws, capsys, "--endpoint", "legal-gptj-gone")
    assert code == 1
    assert one_error_line(err) == "endpoint legal-gptj-gone does not exist (deleted, or never deployed)"
    assert aws.invocations == []


def test_endpoint_still_being_created(aws: FakeAws, capsys: pytest.CaptureFixture[str]) -> None:
    aws.statuses[BASE] = "Creating"
    code, _, err = run(aws, capsys)
    assert code == 1
    assert one_error_line(err).startswith(f"endpoint {BASE} is still being created (status Creating)")
    assert aws.invocations == []


def test_failed_endpoint_says_why(aws: FakeAws, capsys: pytest.CaptureFixture[str]) -> None:
    aws.statuses[BASE] = "Failed"
    code, _, err = run(aws, capsys)
    assert code == 1
    assert one_error_line(err) == f"endpoint {BASE} failed: The primary container did not pass the ping health check."


def test_model_error_carries_the_containers_message(aws: FakeAws, capsys: pytest.CaptureFixture[str]) -> None:
    # LMI's error body for a request it cannot run (lmi_input_output_schema.md, "Error Responses").
    container = json.dumps({"error": "Input parsing failed: max_tokens must be at least 1", "code": 424})
    aws.containers[BASE] = lambda _: model_error(424, container, BASE)
    code, _, err = run(aws, capsys)
    assert code == 1
    assert one_error_line(err) == f"endpoint {BASE} answered with an error (424): {container}"


def test_an_answer_reporting_a_failed_generation(aws: FakeAws, capsys: pytest.CaptureFixture[str]) -> None:
    failed = {"generated_text": "", "details": {"finish_reason": "error", "generated_tokens": None}}
    aws.containers[BASE] = lambda _: json_answer(failed)
    code, _, err = run(aws, capsys)
    assert code == 1
    assert "finish_reason: error" in one_error_line(err)


def test_an_answer_in_no_known_shape(aws: FakeAws, capsys: pytest.CaptureFixture[str]) -> None:
    aws.containers[BASE] = lambda _: json_answer({"outputs": ["?"]})
    code, _, err = run(aws, capsys)
    assert code == 1
    assert one_error_line(err).startswith(f"endpoint {BASE}: no generated text in the answer")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--num-return-sequences", "2", "--no-do-sample"], "num_return_sequences > 1 needs do_sample"),
        (["--max-length", "4096"], "max_length must be from 1 to 2048"),
        (["--top-p", "0"], "top_p must be greater than 0"),
    ],
)
def test_bad_generation_parameters_fail_before_any_call(
    aws: FakeAws, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run(aws, capsys, *args)
    assert code == 1
    assert message in one_error_line(err)
    assert aws.calls == []


def test_compare_and_endpoint_together_is_a_usage_error(aws: FakeAws, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(aws, capsys, "--compare", "--endpoint", "base")
    assert exit_info.value.code == 2


# --- the real entry point and the names it relies on ----------------------------------------------------------


def test_make_invoke_command_line_end_to_end(aws: FakeAws) -> None:
    env = {**os.environ, **dummy_environment()}
    result = subprocess.run(
        [sys.executable, "-m", "ops.invoke", "--prompt", PROMPT, "--endpoint-url", aws.url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"{PROMPT} [{BASE} continues]\n"


def test_the_region_is_the_settings_files_of_the_environment(
    aws: FakeAws, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Without --region the endpoints are looked for where config/<ENV>.json deploys them, whatever AWS_REGION says.
    aws.outputs = None
    shutil.copy(ROOT / "config" / "default.json", tmp_path / "default.json")  # region us-east-1
    (tmp_path / "eu.json").write_text(json.dumps({"region": "eu-west-2"}))
    monkeypatch.setattr(cli, "read_environment", lambda env: read_environment(env, tmp_path))
    for env, region in (["--env", "eu"], "eu-west-2"), ([], "us-east-1"):
        code = cli.main(["--prompt", PROMPT, "--endpoint-url", aws.url, *env])
        assert code == 1
        assert one_error_line(capsys.readouterr().err).startswith(f"stack {STACK_NAME} is not deployed in {region}:")


def test_an_environment_without_a_settings_file_is_one_line(aws: FakeAws, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["--prompt", PROMPT, "--endpoint-url", aws.url, "--env", "nope"])
    assert code == 1
    assert one_error_line(capsys.readouterr().err) == (
        "ENV=nope: no settings file config/nope.json (committed environments: default)"
    )
    assert aws.calls == []


def test_make_invoke_passes_the_environment_and_the_prompt_verbatim() -> None:
    prompt = 'it\'s "quoted" $$ok'
    command = ["-n", "--no-print-directory", "invoke", "ENV=eu", f"PROMPT={prompt}", "ARGS=--compare"]
    make = subprocess.run(
        [shutil.which("make") or "make", *command], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    (line,) = [line for line in make.splitlines() if "-m ops.invoke" in line]
    arguments = shlex.split(line.split("-m ops.invoke ", 1)[1])
    assert arguments == ["--env", "eu", "--prompt", 'it\'s "quoted" $ok', "--compare"]


def test_stack_and_output_names_match_the_app() -> None:
    # The client avoids importing the CDK at run time; the names it hard-codes are checked against the app here.
    from stacks.app_builder import STACK_PREFIX
    from stacks.serving_stack import BASE_OUTPUT, FINE_TUNED_OUTPUT

    assert f"{STACK_PREFIX}Serving" == STACK_NAME
    assert OUTPUT_KEYS == {"base": BASE_OUTPUT, "fine-tuned": FINE_TUNED_OUTPUT}
