"""Summarize a synthesized cloud assembly: stacks, resource counts, cdk-nag and cfn-lint findings.

Exits non-zero when cfn-lint reports anything (errors or warnings) or cdk-nag left a finding unacknowledged.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def nag_violations(assembly: Path) -> list[str]:
    report_path = assembly / "validation-report.json"
    if not report_path.exists():
        return []
    report = json.loads(report_path.read_text())
    return [
        f"{violation['ruleName']} at {construct['constructPath']}"
        for plugin in report.get("pluginReports", [])
        for violation in plugin.get("violations", [])
        for construct in violation.get("violatingConstructs", [])
    ]


def acknowledged_findings(metadata: Path) -> int:
    """Acknowledgements recorded for a stack in `<stack>.metadata.json`: all of them, including those made after
    cross-stack references resolved, which the template's cdk_nag metadata does not carry."""
    entries = json.loads(metadata.read_text()) if metadata.exists() else {}
    return sum(
        len(entry["data"])
        for construct_entries in entries.values()
        for entry in construct_entries
        if entry["type"] == "aws:cdk:acknowledged-rules"
    )


def lint(templates: list[Path]) -> list[str]:
    if not templates:
        return []
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--format", "parseable", "--", *map(str, templates)],
        capture_output=True,
        text=True,
        cwd=ROOT,  # picks up .cfnlintrc.yaml
        check=False,
    )
    if result.returncode not in (0, 2, 4, 6, 8, 10, 12, 14):  # cfn-lint's exit code is a bit mask of levels
        raise SystemExit(f"cfn-lint failed to run: {result.stderr.strip()}")
    return [line for line in result.stdout.splitlines() if line.strip()]


def main(argv: list[str]) -> int:
    assembly = Path(argv[0] if argv else "cdk.out")
    templates = sorted(assembly.glob("*.template.json"))
    if not templates:
        print(f"error: no templates in {assembly}/: run the synth first", file=sys.stderr)
        return 1
    print(f"{'stack':<24} {'resources':>9} {'acknowledged nag findings':>26}  most common types")
    for path in templates:
        template = json.loads(path.read_text())
        types = Counter(r["Type"] for r in template.get("Resources", {}).values())
        common = ", ".join(f"{t.split('::', 1)[-1]} {n}" for t, n in types.most_common(3))
        stack = path.name.removesuffix(".template.json")
        acknowledged = acknowledged_findings(assembly / f"{stack}.metadata.json")
        print(f"{stack:<24} {sum(types.values()):>9} {acknowledged:>26}  {common}")
    violations = nag_violations(assembly)
    findings = lint(templates)
    print(f"cdk-nag AwsSolutions: {len(violations)} unacknowledged finding(s)")
    print(f"cfn-lint: {len(findings)} finding(s) (ignored rules and reasons: .cfnlintrc.yaml)")
    for line in violations + findings:
        print(f"  {line}")
    return 1 if violations or findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
