"""AWS Lambda entry point: ``dataset_prep.handler.handler`` (code root: the ``lambdas/`` folder).

Invoked directly, the event may set ``doc_count``, ``validation``, ``source_url``, ``expected_md5`` and
``bucket`` (the latter for tests; normally the ``DATASET_BUCKET`` environment variable). Invoked by a CDK
Trigger (the event is empty) or with any CloudFormation-shaped event (it has ``RequestType``), the event is
ignored and the settings come from the environment: ``DOC_COUNT``, ``VALIDATION``, ``SOURCE_URL``,
``EXPECTED_MD5``, ``DATASET_BUCKET``. A missing or empty key falls back to the environment, then to the
defaults (693, held_out, the Zenodo URL, no md5). Optional: ``DOWNLOAD_MAX_SECONDS`` (default 600, never
beyond the invocation's remaining time less 120 s).
Logs one JSON object per line. Raises a ``PrepError`` with a one-line message on failure.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from .config import DEFAULT_DOC_COUNT, DEFAULT_SOURCE_URL, DEFAULT_VALIDATION, DownloadPolicy, PrepConfig
from .errors import ConfigError, PrepError, one_line
from .lock import LockPolicy
from .pipeline import run
from .prep import PrepResult
from .progress import Reporter
from .sinks import S3Sink

_LOGGER = logging.getLogger("dataset_prep")
_PROCESSING_RESERVE_S = 120.0
_MIN_DOWNLOAD_S = 30.0
# What a run that stops waiting still needs: to raise its error and log it before Lambda ends the invocation.
_LOCK_WAIT_RESERVE_S = 30.0


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {"level": record.levelname, "message": record.getMessage()}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update(fields)
        return json.dumps(payload, default=str, separators=(",", ":"))


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is at the time (Lambda sends stdout to CloudWatch Logs)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def _configure_logging() -> None:
    if not any(isinstance(h, _StdoutHandler) for h in _LOGGER.handlers):
        stream = _StdoutHandler(sys.stdout)
        stream.setFormatter(_JsonFormatter())
        _LOGGER.addHandler(stream)
        _LOGGER.setLevel(logging.INFO)
        _LOGGER.propagate = False


def _log(message: str, level: int = logging.INFO, **fields: Any) -> None:
    _LOGGER.log(level, message, extra={"fields": fields})


class _LogReporter(Reporter):
    """Logs download progress every 10 % (or 16 MiB without a length) and every 100th document."""

    def __init__(self) -> None:
        self._next_step = 0
        self._started = time.monotonic()

    def download(self, done: int, total: int | None) -> None:
        step = done * 10 // total if total else done // (16 << 20)
        if done == 0:
            self._next_step = 0
        if step >= self._next_step:
            self._next_step = step + 1
            _log("download", bytes=done, total=total, seconds=round(time.monotonic() - self._started, 1))

    def retry(self, attempt: int, delay: float, reason: str) -> None:
        _log("download retry", logging.WARNING, attempt=attempt, delay_s=round(delay, 2), reason=reason)

    def document(self, output: str, index: int, count: int, name: str) -> None:
        if index % 100 == 0 or index == count:
            _log("documents", output=output, done=index, total=count)

    def info(self, message: str) -> None:
        _log(message)


def _setting(params: Mapping[str, Any], key: str, env: str, default: Any) -> Any:
    value = params.get(key)
    if value is None or value == "":
        value = os.environ.get(env) or default
    return value


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ConfigError(f"{name} must be an integer, got {value!r}")


def config_from_event(event: Any) -> tuple[PrepConfig, str]:
    """The prep configuration and bucket for ``event`` (see the module docstring)."""
    params: Mapping[str, Any] = event if isinstance(event, Mapping) else {}
    if "RequestType" in params:  # CloudFormation-shaped: its properties are not our settings
        params = {}
    expected = _setting(params, "expected_md5", "EXPECTED_MD5", None)
    config = PrepConfig(
        doc_count=_int(_setting(params, "doc_count", "DOC_COUNT", DEFAULT_DOC_COUNT), "doc_count"),
        validation=str(_setting(params, "validation", "VALIDATION", DEFAULT_VALIDATION)),
        source_url=str(_setting(params, "source_url", "SOURCE_URL", DEFAULT_SOURCE_URL)),
        expected_md5=str(expected) if expected is not None else None,
    )
    bucket = str(_setting(params, "bucket", "DATASET_BUCKET", ""))
    if not bucket:
        raise ConfigError("no bucket: set the DATASET_BUCKET environment variable")
    return config, bucket


def _download_policy(context: Any) -> DownloadPolicy:
    raw = os.environ.get("DOWNLOAD_MAX_SECONDS") or str(DownloadPolicy().max_total_seconds)
    try:
        budget = float(raw)
    except ValueError:
        raise ConfigError(f"DOWNLOAD_MAX_SECONDS must be a number of seconds, got {raw!r}") from None
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining_ms):
        left = float(remaining_ms()) / 1000.0 - _PROCESSING_RESERVE_S
        budget = max(_MIN_DOWNLOAD_S, min(budget, left))
    return DownloadPolicy(max_total_seconds=budget)


def _lock_policy(context: Any, policy: LockPolicy | None = None) -> LockPolicy:
    """Wait for another run's dataset at most until shortly before this invocation times out, so that the wait
    ends in the run's own one-line error rather than in Lambda's timeout. The time left is asked when the wait
    begins (after the download), not now."""
    policy = policy or LockPolicy()
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining_ms):
        return policy

    def time_left() -> float:
        return float(remaining_ms()) / 1000.0 - _LOCK_WAIT_RESERVE_S

    return dataclasses.replace(policy, time_left=time_left)


def result_payload(result: PrepResult, bucket: str) -> dict[str, Any]:
    """The JSON-serialisable handler response."""
    manifest = result.manifest
    counts = {
        name: {
            "documents": len(output.documents),
            "words": output.words,
            "characters": output.characters,
            "non_space_characters": output.non_space_characters,
            "bytes": output.size_bytes,
        }
        for name, output in (("train", manifest.train), ("validation", manifest.validation_output))
    }
    return {
        "manifest_uri": result.manifest_uri,
        "manifest_key": result.manifest_key,
        "bucket": bucket,
        "prefix": result.prefix,
        "dataset_id": result.dataset_id,
        "train_s3_uri": result.train_uri,
        "validation_s3_uri": result.validation_uri,
        "reused": result.reused,
        "downloaded": result.downloaded,
        "doc_count": manifest.doc_count,
        "validation": manifest.validation,
        "archive_md5": manifest.archive_md5,
        "counts": counts,
    }


def handler(event: Any, context: Any) -> dict[str, Any]:
    _configure_logging()
    started = time.monotonic()
    try:
        config, bucket = config_from_event(event)
        _log(
            "start",
            doc_count=config.doc_count,
            validation=config.validation,
            source_url=config.source_url,
            expected_md5=config.expected_md5,
            bucket=bucket,
        )
        client = boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 8}))
        sink = S3Sink(client, bucket)
        with tempfile.TemporaryDirectory(prefix="dataset-prep-") as workdir:
            result = run(
                config,
                sink,
                Path(workdir),
                policy=_download_policy(context),
                reporter=_LogReporter(),
                lock_policy=_lock_policy(context),
            )
    except Exception as err:
        reason = str(err) if isinstance(err, PrepError) else one_line(err)
        _log("failed", logging.ERROR, error=type(err).__name__, reason=reason)
        raise
    payload = result_payload(result, bucket)
    _log("done", seconds=round(time.monotonic() - started, 1), **payload)
    return payload
