"""The Lambda handler, with a direct (Lambda-shaped) event and as a CDK Trigger / CloudFormation event."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fakes.archive import SyntheticArchive
from fakes.http_server import BlobServer
from fakes.moto_server import MotoServer, list_keys
from lambdas.dataset_prep import ConfigError, DatasetError, PrepConfig
from lambdas.dataset_prep.handler import config_from_event, handler


class FakeContext:
    function_name = "dataset-prep"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def __init__(self, remaining_ms: int = 900_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch, moto_s3: MotoServer, bucket: str) -> str:
    for key in ("DOC_COUNT", "VALIDATION", "SOURCE_URL", "EXPECTED_MD5", "DATASET_BUCKET", "DOWNLOAD_MAX_SECONDS"):
        monkeypatch.delenv(key, raising=False)
    for key, value in moto_s3.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DATASET_BUCKET", bucket)
    return bucket


def test_lambda_event(
    lambda_env: str, s3: Any, http_server: BlobServer, archive: SyntheticArchive, capsys: pytest.CaptureFixture[str]
) -> None:
    event = {"doc_count": 5, "validation": "held_out", "source_url": http_server.url, "expected_md5": archive.md5}
    out = handler(event, FakeContext())
    assert json.loads(json.dumps(out)) == out
    prefix = f"datasets/{out['dataset_id']}/"
    assert out["prefix"] == prefix
    assert out["manifest_key"] == prefix + "manifest.json"
    assert out["manifest_uri"] == f"s3://{lambda_env}/{prefix}manifest.json"
    assert out["train_s3_uri"] == f"s3://{lambda_env}/{prefix}train/"
    assert out["validation_s3_uri"] == f"s3://{lambda_env}/{prefix}validation/"
    assert out["reused"] is False and out["downloaded"] is True
    assert out["counts"]["train"]["documents"] == 5
    assert out["counts"]["validation"]["documents"] == len(archive.uk_test_names)
    assert out["counts"]["train"]["words"] > 0
    assert len(list_keys(s3, lambda_env, prefix)) == 3
    logs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert logs[0]["message"] == "start" and logs[-1]["message"] == "done"
    # Invoked again: reused, no download.
    again = handler(event, FakeContext())
    assert again["reused"] is True and again["downloaded"] is False
    assert again["manifest_uri"] == out["manifest_uri"]
    assert http_server.get_count == 1


@pytest.mark.parametrize(
    "event",
    [
        {},
        None,
        {"RequestType": "Create", "ResourceProperties": {"ServiceToken": "arn:aws:lambda:x", "HandlerArn": "y"}},
    ],
    ids=["trigger-empty", "none", "cloudformation-shaped"],
)
def test_trigger_event_uses_environment(
    event: Any, lambda_env: str, monkeypatch: pytest.MonkeyPatch, http_server: BlobServer, archive: SyntheticArchive
) -> None:
    monkeypatch.setenv("DOC_COUNT", "4")
    monkeypatch.setenv("VALIDATION", "summaries")
    monkeypatch.setenv("SOURCE_URL", http_server.url)
    monkeypatch.setenv("EXPECTED_MD5", archive.md5.upper())
    out = handler(event, FakeContext())
    assert out["doc_count"] == 4 and out["validation"] == "summaries"
    assert out["archive_md5"] == archive.md5
    assert out["counts"]["validation"]["documents"] == 4


def test_event_bucket_override_and_string_doc_count(lambda_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    config, bucket = config_from_event({"doc_count": "12", "bucket": "other", "expected_md5": ""})
    assert bucket == "other"
    assert config == PrepConfig(doc_count=12)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"doc_count": "many"}, "doc_count must be an integer, got 'many'"),
        ({"doc_count": 0}, "doc_count must be a positive integer, got 0"),
        ({"validation": "test"}, "validation must be one of held_out, summaries, got 'test'"),
        ({"source_url": "file:///etc/passwd"}, "source_url must be an http"),
        ({"expected_md5": "abc"}, "expected_md5 must be 32 hex digits"),
    ],
)
def test_bad_settings_are_clear(lambda_env: str, event: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        handler(event, FakeContext())


def test_missing_bucket(lambda_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATASET_BUCKET")
    with pytest.raises(ConfigError, match="DATASET_BUCKET"):
        handler({}, FakeContext())


def test_failure_is_logged_as_one_json_line_and_raised(
    lambda_env: str, http_server: BlobServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(DatasetError, match="doc_count=50"):
        handler({"doc_count": 50, "source_url": http_server.url}, FakeContext())
    last = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert last["message"] == "failed" and last["error"] == "DatasetError" and "doc_count=50" in last["reason"]


def test_download_budget_respects_remaining_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from lambdas.dataset_prep.handler import _download_policy

    monkeypatch.delenv("DOWNLOAD_MAX_SECONDS", raising=False)
    assert _download_policy(FakeContext(900_000)).max_total_seconds == 600
    assert _download_policy(FakeContext(300_000)).max_total_seconds == 180
    assert _download_policy(FakeContext(10_000)).max_total_seconds == 30
    monkeypatch.setenv("DOWNLOAD_MAX_SECONDS", "100")
    assert _download_policy(FakeContext(900_000)).max_total_seconds == 100
    assert _download_policy(None).max_total_seconds == 100
    monkeypatch.setenv("DOWNLOAD_MAX_SECONDS", "ten")
    with pytest.raises(ConfigError, match="DOWNLOAD_MAX_SECONDS must be a number"):
        _download_policy(None)


class Invocation:
    """A Lambda invocation's clock: its context's remaining time goes down as the run's clock goes on."""

    def __init__(self, timeout_s: float) -> None:
        self.now = 1_000_000.0
        self.ends = self.now + timeout_s
        self.slept = 0.0

    def get_remaining_time_in_millis(self) -> int:
        return int((self.ends - self.now) * 1000)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


@pytest.mark.parametrize(("download_s", "left_when_waiting_s"), [(0, 900), (860, 40), (890, 10), (899, 1)])
def test_the_wait_for_another_run_ends_before_the_invocation_does(
    archive: SyntheticArchive, s3: Any, bucket: str, download_s: float, left_when_waiting_s: float
) -> None:
    # The policy is made when the invocation starts; the wait starts after the download, with less time left.
    from lambdas.dataset_prep import LockPolicy, S3Sink, SinkError, dataset_id, dataset_prefix, prepare
    from lambdas.dataset_prep.handler import _lock_policy
    from lambdas.dataset_prep.lock import lock_key

    invocation = Invocation(timeout_s=900)
    policy = _lock_policy(invocation, LockPolicy(clock=invocation.clock, sleep=invocation.sleep))
    invocation.now += download_s
    config = PrepConfig(doc_count=6)
    held = json.dumps({"owner": "another run", "expires": invocation.now + 3600}).encode()
    s3.put_object(Bucket=bucket, Key=lock_key(dataset_prefix(dataset_id(archive.md5, config))), Body=held)
    with pytest.raises(SinkError, match="another run is preparing this dataset"):
        prepare(archive.path, S3Sink(s3, bucket), config, lock_policy=policy)
    assert invocation.slept < left_when_waiting_s  # it says why in its own words, before Lambda's timeout
    assert invocation.slept == min(600, max(0, left_when_waiting_s - 30))


def test_outside_lambda_the_wait_is_the_policys() -> None:
    from lambdas.dataset_prep.handler import _lock_policy

    assert _lock_policy(None).wait_budget() == 600
