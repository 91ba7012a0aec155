"""docs/architecture.md stays true: its diagram names exactly the stacks the app synthesizes, and in each stack
exactly the main resource types that stack holds in some configuration the suite uses."""

from __future__ import annotations

import re
from collections import defaultdict

from tests.synth import CONFIGURATIONS, ROOT, synth

MAIN_TYPES = {
    "AWS::S3::Bucket",
    "AWS::KMS::Key",
    "AWS::SNS::Topic",
    "AWS::StepFunctions::StateMachine",
    "AWS::SageMaker::Model",
    "AWS::SageMaker::EndpointConfig",
    "AWS::SageMaker::Endpoint",
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::CloudWatch::Dashboard",
    "Custom::Trigger",
    "Custom::StopRunningTraining",
}


def diagram() -> dict[str, set[str]]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"```mermaid\n(.*?)```", text, re.DOTALL)
    assert block, "docs/architecture.md has no mermaid diagram"
    named: dict[str, set[str]] = {}
    current = None
    for line in block.group(1).splitlines():
        if m := re.match(r"\s*subgraph (\w+)", line):
            current = m.group(1)
            named[current] = set()
        elif re.match(r"\s*end\s*$", line):
            current = None
        elif current:
            named[current] |= set(re.findall(r"(?:AWS|Custom)::[\w:]+", line))
    return named


def synthesized() -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for overrides in CONFIGURATIONS.values():
        for stack, template in synth(**overrides).templates.items():
            found[stack] |= {r["Type"] for r in template["Resources"].values()} & MAIN_TYPES
    return dict(found)


def test_diagram_names_every_stack_and_only_those() -> None:
    assert set(diagram()) == set(synthesized())


def test_diagram_names_each_stacks_main_resources_and_only_those() -> None:
    drawn, real = diagram(), synthesized()
    for stack in real:
        assert drawn.get(stack, set()) == real[stack], stack
