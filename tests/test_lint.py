"""cfn-lint over every synthesized template of every configuration: no errors, no warnings.

Ignored rules, each with its reason, are listed in .cfnlintrc.yaml.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.synth import CONFIGURATIONS, ROOT, synth

CFN_LINT = Path(sys.executable).parent / "cfn-lint"


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_templates_lint_clean(name: str) -> None:
    templates = sorted(synth(**CONFIGURATIONS[name]).outdir.glob("*.template.json"))
    assert templates
    result = subprocess.run(
        [str(CFN_LINT), "--format", "parseable", "--", *map(str, templates)],
        capture_output=True,
        text=True,
        cwd=ROOT,  # picks up .cfnlintrc.yaml
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, ""), result.stderr
