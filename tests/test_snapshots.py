"""One snapshot per stack of the default configuration, with asset hashes normalized.

A change here is an infrastructure change: review it like the diff a pull request shows, then run
`make snapshot-update` to accept it.
"""

from __future__ import annotations

import pytest
from syrupy.assertion import SnapshotAssertion

from tests.synth import STACKS, Assembly, normalized


def test_the_app_has_exactly_these_stacks(default_app: Assembly) -> None:
    assert sorted(default_app.templates) == sorted(STACKS)


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_stack_snapshot(default_app: Assembly, json_snapshot: SnapshotAssertion, stack: str) -> None:
    assert normalized(default_app.templates[stack]) == json_snapshot
