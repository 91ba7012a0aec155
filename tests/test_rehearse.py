"""`make rehearse` end to end: the chain's wiring (prep -> S3 -> manifest -> train.py -> saved model -> query)."""

from __future__ import annotations

import pytest

from ops import rehearse


@pytest.mark.slow
def test_rehearsal_runs_the_whole_chain(capsys: pytest.CaptureFixture[str]) -> None:
    assert rehearse.main(["--doc-count", "6"]) == 0
    out = capsys.readouterr().out
    assert "rehearsal passed" in out
    assert "validation perplexity: base" in out
    assert "answer:     'His Honour Judge Richards:" in out
