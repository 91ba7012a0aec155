"""Shared fixtures for the dataset-prep tests: loopback HTTP and S3 servers, synthetic archives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes.archive import SyntheticArchive, build_synthetic_archive
from fakes.http_server import BlobServer
from fakes.moto_server import MotoServer
from lambdas.dataset_prep import DownloadPolicy

#: Retries that take milliseconds, not seconds.
FAST_POLICY = DownloadPolicy(backoff_base=0.01, backoff_max=0.05, timeout=2.0, max_total_seconds=20.0)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="session")
def s3(moto_s3: MotoServer) -> Any:
    """One boto3 client for the session (making a client costs ~0.3 s)."""
    return moto_s3.client()


@pytest.fixture
def bucket(moto_s3: MotoServer, s3: Any) -> str:
    return moto_s3.new_bucket(s3)


@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory) -> SyntheticArchive:
    """The default small archive (12 UK train, 5 UK test documents); do not modify it."""
    return build_synthetic_archive(tmp_path_factory.mktemp("archive") / "dataset.zip")


@pytest.fixture
def http_server(archive: SyntheticArchive) -> Iterator[BlobServer]:
    with BlobServer(archive.data) as server:
        yield server


@pytest.fixture
def fast_policy() -> DownloadPolicy:
    return FAST_POLICY


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path
