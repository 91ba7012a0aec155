"""Streaming HTTP download to disk with retries, HTTP Range resume and a total time budget (stdlib urllib)."""

from __future__ import annotations

import hashlib
import http.client
import random
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from .config import DownloadPolicy
from .errors import ConfigError, DownloadError, one_line
from .progress import Reporter

_CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_RETRYABLE_STATUS = frozenset({408, 425, 429})


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    size: int
    md5: str
    attempts: int
    #: How many times an interrupted transfer continued with an HTTP Range request (206).
    resumes: int
    #: How many times a partial transfer had to start again from byte 0 (server without Range support).
    restarts: int


class _RetryableError(Exception):
    """A transient failure: try again after a backoff (or the server's Retry-After)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _retry_after_seconds(value: str | None) -> float | None:
    """Parse a Retry-After header: delta-seconds or an HTTP date; None when absent or unparsable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _short(exc: BaseException) -> str:
    text = one_line(exc)
    return f"{type(exc).__name__}: {text}"[:300]


class _Transfer:
    """State of one download: the partial file, its running md5 and the byte count."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.written = 0
        self.expected_total: int | None = None
        self.resumes = 0
        self.restarts = 0

    def restart(self) -> None:
        self.fh.seek(0)
        self.fh.truncate()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.written = 0
        self.expected_total = None
        self.restarts += 1

    def append(self, data: bytes) -> None:
        try:
            self.fh.write(data)
        except OSError as err:
            raise DownloadError(f"cannot write the download to {self.fh.name}: {_short(err)}") from None
        self.md5.update(data)
        self.written += len(data)


def download(
    url: str,
    dest: Path,
    *,
    policy: DownloadPolicy | None = None,
    max_bytes: int = 1 << 30,
    reporter: Reporter | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DownloadResult:
    """Download ``url`` to ``dest`` (overwritten), computing its md5 on the way.

    Retries timeouts, refused/dropped connections, truncated bodies, 408/425/429 and 5xx responses with
    exponential backoff and full jitter (honouring ``Retry-After``). After a partial transfer it asks for the
    rest with ``Range``; a 206 with the matching ``Content-Range`` continues the file, a 200 starts it again.
    Gives up with :class:`DownloadError` after ``policy.max_attempts`` attempts, when
    ``policy.max_total_seconds`` would be exceeded, on other HTTP errors (404, 403...), or when the body
    exceeds ``max_bytes``.
    """
    policy = policy or DownloadPolicy()
    reporter = reporter or Reporter()
    if urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError(f"source_url must be an http(s) URL, got {url!r}")
    deadline = time.monotonic() + policy.max_total_seconds
    attempts = 0
    with dest.open("wb") as fh:
        transfer = _Transfer(fh)
        while True:
            attempts += 1
            try:
                _attempt(url, transfer, policy, deadline, max_bytes, reporter)
                break
            except _RetryableError as failure:
                if attempts >= policy.max_attempts:
                    raise DownloadError(
                        f"download of {url} failed after {attempts} attempts (max_attempts): {failure.reason}"
                    ) from None
                cap = min(policy.backoff_max, policy.backoff_base * 2 ** (attempts - 1))
                delay = random.uniform(0.0, cap)  # noqa: S311 - jitter, not cryptography
                if failure.retry_after is not None:
                    delay = max(delay, failure.retry_after)
                if time.monotonic() + delay > deadline:
                    raise DownloadError(
                        f"download of {url} would exceed max_total_seconds={policy.max_total_seconds:g} "
                        f"(after {attempts} attempts, next wait {delay:.1f}s): {failure.reason}"
                    ) from None
                reporter.retry(attempts, delay, failure.reason)
                sleep(delay)
        fh.flush()
    return DownloadResult(
        dest, transfer.written, transfer.md5.hexdigest(), attempts, transfer.resumes, transfer.restarts
    )


def _attempt(
    url: str,
    transfer: _Transfer,
    policy: DownloadPolicy,
    deadline: float,
    max_bytes: int,
    reporter: Reporter,
) -> None:
    """One HTTP request that continues ``transfer``; raises _RetryableError on transient failures."""
    headers = {"User-Agent": policy.user_agent, "Accept-Encoding": "identity"}
    if transfer.written:
        headers["Range"] = f"bytes={transfer.written}-"
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - scheme checked by the caller
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DownloadError(f"download of {url} exceeded max_total_seconds={policy.max_total_seconds:g}")
    try:
        with urllib.request.urlopen(request, timeout=min(policy.timeout, remaining)) as response:  # noqa: S310
            status = response.status
            length_header = response.headers.get("Content-Length")
            length = int(length_header) if length_header and length_header.isdigit() else None
            if transfer.written and status == 206:
                match = _CONTENT_RANGE_RE.match(response.headers.get("Content-Range", "").strip())
                if not match or int(match.group(1)) != transfer.written:
                    transfer.restart()
                    raise _RetryableError("server answered Range with a mismatching Content-Range; restarting from 0")
                transfer.resumes += 1
                if match.group(3) != "*":
                    transfer.expected_total = int(match.group(3))
                elif length is not None:
                    transfer.expected_total = transfer.written + length
            elif status == 200:
                if transfer.written:
                    transfer.restart()  # the server ignored Range: start again from byte 0
                transfer.expected_total = length
            else:
                raise DownloadError(f"download of {url}: unexpected HTTP status {status}")
            total = transfer.expected_total
            if total is not None and total > max_bytes:
                raise DownloadError(f"archive at {url} is {total} bytes, above max_archive_bytes={max_bytes}")
            reporter.download(transfer.written, total)
            while True:
                if time.monotonic() > deadline:
                    raise DownloadError(
                        f"download of {url} exceeded max_total_seconds={policy.max_total_seconds:g} "
                        f"({transfer.written} bytes received)"
                    )
                data = response.read1(policy.chunk_size)
                if not data:
                    break
                transfer.append(data)
                if transfer.written > max_bytes:
                    raise DownloadError(f"archive at {url} exceeds max_archive_bytes={max_bytes}")
                reporter.download(transfer.written, total)
            if total is not None and transfer.written != total:
                raise _RetryableError(f"connection closed after {transfer.written} of {total} bytes")
    except urllib.error.HTTPError as err:
        retry_after = _retry_after_seconds(err.headers.get("Retry-After") if err.headers else None)
        err.close()
        if err.code == 416 and transfer.written:
            transfer.restart()
            raise _RetryableError("HTTP 416 for the resume Range; restarting from 0") from None
        if err.code in _RETRYABLE_STATUS or err.code >= 500:
            raise _RetryableError(f"HTTP {err.code} {err.reason}", retry_after) from None
        raise DownloadError(f"download of {url} failed: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        # Timeouts, refused or reset connections, IncompleteRead, RemoteDisconnected, ...
        reason = err.reason if isinstance(err, urllib.error.URLError) else err
        text = _short(reason) if isinstance(reason, BaseException) else str(reason)
        raise _RetryableError(f"{text} after {transfer.written} bytes") from None
