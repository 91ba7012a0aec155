"""cfn-lint over every synthesized template of every configuration: no errors, no warnings.

Ignored rules, each with its reason, are listed in .cfnlintrc.yaml.
"""

from __future__ import annotations

import pytest

from tests.synth import CONFIGURATIONS, synth
from tools.synth_summary import lint


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_templates_lint_clean(name: str) -> None:
    templates = sorted(synth(**CONFIGURATIONS[name]).outdir.glob("*.template.json"))
    assert templates
    assert lint(templates) == []
