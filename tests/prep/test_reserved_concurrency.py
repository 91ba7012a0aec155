"""No function reserves concurrency unless asked: a reservation fails the deploy in an account with little of it.

Lambda refuses a reservation that leaves fewer than 100 unreserved concurrent executions, or fewer than the whole
quota where that is smaller (a new account's 10), so with any reservation the dataset stack cannot deploy there.
"""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from config import SettingError, load_settings
from stacks.dataset_stack import DatasetStack
from tests.synth import CDK_CONTEXT, Assembly


def test_no_function_of_the_default_app_reserves_concurrency(default_app: Assembly) -> None:
    handlers = []
    for stack, template in default_app.templates.items():
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] == "AWS::Lambda::Function":
                assert "ReservedConcurrentExecutions" not in resource["Properties"], (stack, logical_id)
                handlers.append(resource["Properties"].get("Handler"))
    assert "dataset_prep.handler.handler" in handlers  # the prep function, which reserved 1, was looked at


def test_a_reservation_is_opt_in() -> None:
    app = cdk.App(context=CDK_CONTEXT)
    settings = load_settings({**CDK_CONTEXT, "prep_reserved_concurrency": "2"})
    stack = DatasetStack(app, "Dataset", settings=settings, env=cdk.Environment(region=settings.region))
    template = Template.from_stack(stack).to_json()
    reserved = {
        r["Properties"].get("Handler"): r["Properties"]["ReservedConcurrentExecutions"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and "ReservedConcurrentExecutions" in r["Properties"]
    }
    assert reserved == {"dataset_prep.handler.handler": 2}


def test_a_reservation_beyond_what_a_default_account_can_give_stops_synth() -> None:
    # 1000 (the quota an account starts with) less the 100 Lambda keeps unreserved.
    assert load_settings({"region": "us-east-1", "prep_reserved_concurrency": 900}).prep_reserved_concurrency == 900
    with pytest.raises(SettingError, match=r"invalid setting prep_reserved_concurrency=901: expected an integer"):
        load_settings({"region": "us-east-1", "prep_reserved_concurrency": 901})
