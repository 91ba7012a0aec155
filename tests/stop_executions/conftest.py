"""A moto server on loopback for Step Functions (and SageMaker's list calls), and botocore Stubbers for SageMaker's
stop calls, which moto does not implement."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.moto_server import MotoServer


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server
