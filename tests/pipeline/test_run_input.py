"""What `make train` sends (ops/train.py's execution input) against the state machine it starts, executed: every key
it sends is taken and reaches the run, and every other setting is refused, so the set of run settings that
`make train` offers is the state machine's, not a copy of it."""

from __future__ import annotations

import dataclasses
from typing import Any

from config import Settings
from fakes.stepfunctions import REGION, StepFunctions
from ops import train
from tests.pipeline.conftest import Runner

# A value other than the deployed default for each run setting.
RUN_VALUES: dict[str, Any] = {"doc_count": 4, "epochs": 1, "method": "lora"}


def test_every_run_setting_make_train_sends_reaches_the_run(run: Runner, sf: StepFunctions) -> None:
    assert set(RUN_VALUES) == set(train.OVERRIDABLE_INPUT), "give each run setting a test value"
    settings = dataclasses.replace(Settings(region=REGION), **RUN_VALUES)
    execution = run(train.execution_input(settings))
    assert execution.status == "SUCCEEDED", execution.cause
    ((_, prep_payload),) = sf.lambdas.invocations
    (request,) = [request for name, request in sf.sagemaker.calls if name == "CreateTrainingJob"]
    reached = {**prep_payload, **request["HyperParameters"]}
    assert {key: str(reached.get(key)) for key in RUN_VALUES} == {key: str(v) for key, v in RUN_VALUES.items()}


def test_no_other_setting_is_taken_as_execution_input(run: Runner, sf: StepFunctions) -> None:
    defaults = Settings(region=REGION)
    others = [f.name for f in dataclasses.fields(Settings) if f.name not in train.OVERRIDABLE_INPUT]
    taken = [key for key in others if run({key: getattr(defaults, key)}).error != "InvalidInput"]
    assert taken == []
    assert sf.lambdas.invocations == [] and sf.sagemaker.calls == []
