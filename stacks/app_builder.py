"""Builds the whole app from settings: the one place that decides which stacks exist."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk

from config import Settings
from stacks.dataset_stack import DatasetStack
from stacks.log_groups import DeclareFunctionLogGroups
from stacks.nag import add_nag_checks

STACK_PREFIX = "LegalGptj"


@dataclass(frozen=True)
class PipelineStacks:
    dataset: DatasetStack

    def all(self) -> list[cdk.Stack]:
        return [self.dataset]


def build_pipeline(app: cdk.App, settings: Settings) -> PipelineStacks:
    env = cdk.Environment(region=settings.region)  # no account: templates stay account-agnostic
    dataset = DatasetStack(
        app,
        f"{STACK_PREFIX}Dataset",
        settings=settings,
        env=env,
        description="Legal GPT-J: dataset bucket and prep (stateful)",
    )
    stacks = PipelineStacks(dataset=dataset)
    for stack in stacks.all():
        cdk.Tags.of(stack).add("project", "legal-gptj")
    cdk.Aspects.of(app).add(DeclareFunctionLogGroups())
    add_nag_checks(app)
    return stacks
