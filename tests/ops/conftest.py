"""Fixtures for the operator commands' tests that run against an AWS account on loopback (tests/ops/loopback.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.aws_standin import StandInServer
from fakes.moto_server import MotoServer
from tests.ops.loopback import Loopback, environment


@pytest.fixture(scope="session")
def loopback_servers() -> Iterator[tuple[MotoServer, StandInServer]]:
    with MotoServer() as moto, StandInServer() as standin:
        yield moto, standin


@pytest.fixture
def account(loopback_servers: tuple[MotoServer, StandInServer], monkeypatch: pytest.MonkeyPatch) -> Loopback:
    """The environment of an operator whose AWS is moto plus the stand-in; the stand-in's state is fresh."""
    moto, standin = loopback_servers
    standin.reset()
    environment(moto, monkeypatch)
    loopback = Loopback(moto, standin, monkeypatch)
    loopback.point_at(moto.endpoint_url)
    return loopback
