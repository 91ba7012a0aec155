"""One snapshot per stack of the default configuration, with asset hashes normalized.

A change here is an infrastructure change: review it like the diff a pull request shows, then run
`make snapshot-update` to accept it.
"""

from __future__ import annotations

import pytest
from syrupy.assertion import SnapshotAssertion

from tests.synth import Assembly, normalized, synth

STACKS = sorted(synth().templates)


@pytest.mark.parametrize("stack", STACKS)
def test_stack_snapshot(default_app: Assembly, json_snapshot: SnapshotAssertion, stack: str) -> None:
    assert normalized(default_app.templates[stack]) == json_snapshot
