"""Builds the whole app from settings: the one place that decides which stacks exist."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk

from config import Settings
from stacks.dataset_stack import DatasetStack
from stacks.log_groups import DeclareFunctionLogGroups
from stacks.nag import add_nag_checks
from stacks.serving_stack import ServingStack
from stacks.training_stack import TrainingStack

STACK_PREFIX = "LegalGptj"


@dataclass(frozen=True)
class PipelineStacks:
    dataset: DatasetStack
    serving: ServingStack
    training: TrainingStack

    def all(self) -> list[cdk.Stack]:
        return [self.dataset, self.serving, self.training]


def build_pipeline(app: cdk.App, settings: Settings) -> PipelineStacks:
    env = cdk.Environment(region=settings.region)  # no account: templates stay account-agnostic
    dataset = DatasetStack(
        app,
        f"{STACK_PREFIX}Dataset",
        settings=settings,
        env=env,
        description="Legal GPT-J: dataset bucket and prep (stateful)",
    )
    # Always synthesized, with zero endpoints when none is configured: switching one off and deploying removes it.
    serving = ServingStack(
        app,
        f"{STACK_PREFIX}Serving",
        settings=settings,
        store=dataset.store,
        env=env,
        description="Legal GPT-J: inference endpoints, autoscaling and alarms (bills by the hour while one exists)",
    )
    serving.add_stack_dependency(dataset)
    # Stateless, deployed after the dataset stack whose bucket and prep function it uses (D1, D2).
    training = TrainingStack(
        app,
        f"{STACK_PREFIX}Training",
        settings=settings,
        store=dataset.store,
        prep_function=dataset.prep.function,
        env=env,
        description="Legal GPT-J: training pipeline (Step Functions + SageMaker); starts nothing on deploy",
    )
    training.add_stack_dependency(dataset)
    stacks = PipelineStacks(dataset=dataset, serving=serving, training=training)
    for stack in stacks.all():
        cdk.Tags.of(stack).add("project", "legal-gptj")
    cdk.Aspects.of(app).add(DeclareFunctionLogGroups())
    add_nag_checks(app)
    return stacks
