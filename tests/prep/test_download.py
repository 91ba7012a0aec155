"""The downloader against a real loopback HTTP server with injected faults."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from pathlib import Path

import pytest

from fakes.archive import SyntheticArchive
from fakes.http_server import BlobServer, Fault
from lambdas.dataset_prep import DownloadError, DownloadPolicy
from lambdas.dataset_prep.download import download


def fetch(server: BlobServer, tmp_path: Path, policy: DownloadPolicy, **kwargs: object):  # type: ignore[no-untyped-def]
    return download(server.url, tmp_path / "dataset.zip", policy=policy, **kwargs)  # type: ignore[arg-type]


def test_plain_download(
    http_server: BlobServer, archive: SyntheticArchive, tmp_path: Path, fast_policy: DownloadPolicy
) -> None:
    result = fetch(http_server, tmp_path, fast_policy)
    assert result.md5 == archive.md5
    assert result.size == archive.size
    assert result.path.read_bytes() == archive.data
    assert (result.attempts, result.resumes, result.restarts) == (1, 0, 0)
    assert http_server.requests[0].range is None


def test_truncated_body_resumes_with_range(
    http_server: BlobServer, archive: SyntheticArchive, tmp_path: Path, fast_policy: DownloadPolicy
) -> None:
    cut = archive.size * 2 // 5
    http_server.queue(Fault.truncate(cut))
    result = fetch(http_server, tmp_path, fast_policy)
    assert result.md5 == archive.md5
    assert result.resumes == 1 and result.restarts == 0
    assert [r.range for r in http_server.requests] == [None, f"bytes={cut}-"]
    assert [r.status for r in http_server.requests] == [200, 206]


def test_two_interruptions_resume_twice(
    http_server: BlobServer, archive: SyntheticArchive, tmp_path: Path, fast_policy: DownloadPolicy
) -> None:
    http_server.queue(Fault.truncate(1000), Fault.truncate(2000))
    result = fetch(http_server, tmp_path, fast_policy)
    assert result.md5 == archive.md5
    assert [r.range for r in http_server.requests] == [None, "bytes=1000-", "bytes=3000-"]


def test_without_range_support_the_download_restarts(
    archive: SyntheticArchive, tmp_path: Path, fast_policy: DownloadPolicy
) -> None:
    with BlobServer(archive.data, support_range=False) as server:
        server.queue(Fault.truncate(archive.size // 2))
        result = fetch(server, tmp_path, fast_policy)
        assert [r.status for r in server.requests] == [200, 200]
    assert result.md5 == archive.md5
    assert result.restarts == 1 and result.resumes == 0


@pytest.mark.parametrize(
    "fault",
    [Fault.status(500), Fault.status(502), Fault.status(503), Fault.drop(), Fault.status(408)],
    ids=["500", "502", "503", "dropped-connection", "408"],
)
def test_transient_failures_are_retried(
    http_server: BlobServer, archive: SyntheticArchive, tmp_path: Path, fast_policy: DownloadPolicy, fault: Fault
) -> None:
    http_server.queue(fault, fault)
    result = fetch(http_server, tmp_path, fast_policy)
    assert result.md5 == archive.md5
    assert result.attempts == 3


def test_read_timeout_is_retried(
    http_server: BlobServer, archive: SyntheticArchive, tmp_path: Path, fast_policy: DownloadPolicy
) -> None:
    http_server.queue(Fault.hang(5))
    result = fetch(http_server, tmp_path, replace(fast_policy, timeout=0.3))
    assert result.md5 == archive.md5
    assert result.attempts == 2


def test_429_retry_after_is_honoured(
    http_server: BlobServer, archive: SyntheticArchive, tmp_path: Path, fast_policy: DownloadPolicy
) -> None:
    http_server.queue(Fault.status(429, retry_after="3"))
    waits: list[float] = []
    result = fetch(http_server, tmp_path, fast_policy, sleep=waits.append)
    assert result.md5 == archive.md5
    assert len(waits) == 1 and waits[0] >= 3.0


def test_429_retry_after_http_date_really_waits(
    http_server: BlobServer, archive: SyntheticArchive, tmp_path: Path, fast_policy: DownloadPolicy
) -> None:
    from email.utils import formatdate

    http_server.queue(Fault.status(429, retry_after=formatdate(time.time() + 2, usegmt=True)))
    started = time.monotonic()
    result = fetch(http_server, tmp_path, fast_policy)
    assert result.md5 == archive.md5
    assert time.monotonic() - started >= 0.9


def test_retry_after_beyond_the_budget_fails_clearly(
    http_server: BlobServer, tmp_path: Path, fast_policy: DownloadPolicy
) -> None:
    http_server.queue(Fault.status(429, retry_after="3600"))
    with pytest.raises(DownloadError, match=r"would exceed max_total_seconds=20 .*HTTP 429"):
        fetch(http_server, tmp_path, fast_policy)
    assert http_server.get_count == 1


def test_persistent_5xx_gives_up_after_max_attempts(
    http_server: BlobServer, tmp_path: Path, fast_policy: DownloadPolicy
) -> None:
    http_server.always = Fault.status(503)
    with pytest.raises(DownloadError, match=r"failed after 4 attempts \(max_attempts\): HTTP 503"):
        fetch(http_server, tmp_path, replace(fast_policy, max_attempts=4))
    assert http_server.get_count == 4


def test_persistent_truncation_gives_up(http_server: BlobServer, tmp_path: Path, fast_policy: DownloadPolicy) -> None:
    http_server.always = Fault.truncate(0)
    with pytest.raises(DownloadError, match=r"after 3 attempts .*connection closed after 0 of \d+ bytes"):
        fetch(http_server, tmp_path, replace(fast_policy, max_attempts=3))


def test_404_is_not_retried(http_server: BlobServer, tmp_path: Path, fast_policy: DownloadPolicy) -> None:
    http_server.queue(Fault.status(404))
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(http_server, tmp_path, fast_policy)
    assert http_server.get_count == 1


def test_slow_server_hits_the_total_time_budget(
    http_server: BlobServer, tmp_path: Path, fast_policy: DownloadPolicy
) -> None:
    http_server.queue(Fault.slow(delay=0.2, chunk=1000))
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"exceeded max_total_seconds=1"):
        fetch(http_server, tmp_path, replace(fast_policy, max_total_seconds=1.0))
    assert time.monotonic() - started < 3


def test_body_larger_than_the_cap_is_refused(
    http_server: BlobServer, tmp_path: Path, fast_policy: DownloadPolicy
) -> None:
    with pytest.raises(DownloadError, match="above max_archive_bytes=1000"):
        fetch(http_server, tmp_path, fast_policy, max_bytes=1000)


def test_connection_refused_is_retried_then_reported(tmp_path: Path, fast_policy: DownloadPolicy) -> None:
    with BlobServer(b"x") as server:
        url = server.url
    with pytest.raises(DownloadError, match=r"after 2 attempts .*(Connection refused|ConnectionRefused)"):
        download(url, tmp_path / "d.zip", policy=replace(fast_policy, max_attempts=2))


def test_wrong_bytes_give_a_different_md5(
    http_server: BlobServer, archive: SyntheticArchive, tmp_path: Path, fast_policy: DownloadPolicy
) -> None:
    http_server.queue(Fault.wrong_bytes())
    result = fetch(http_server, tmp_path, fast_policy)
    assert result.size == archive.size
    assert result.md5 != archive.md5
    assert result.md5 == hashlib.md5(result.path.read_bytes(), usedforsecurity=False).hexdigest()
