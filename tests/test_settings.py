"""Every configuration key: its default is valid, and a bad value stops synth with one line naming it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from config import SettingError, Settings, load_settings, settings_table
from config.environment import DEFAULT_ENV, ENV_KEY, check_cdk_json, environments, load_environment
from tests.synth import CDK_CONTEXT, ROOT

BASE = {"region": "us-east-1"}

BAD_VALUES: dict[str, list[object]] = {
    "region": ["", "moon-1", "us-east", "US-EAST-1"],
    "retain_data": ["yes", 1, "1"],
    "notification_email": ["not-an-email", "a@b"],
    "doc_count": [0, "0", 694, -1, "ten", 2.5, True],
    "validation": ["test", ""],
    "dataset_url": ["http://zenodo.org/x.zip", "ftp://x", ""],
    "dataset_md5": ["abc", "Z" * 32],
    "prep_reserved_concurrency": [-1, 901, "one"],
    "training_instance_type": ["p3dn.24xlarge", "ml.p3dn.25xlarge", "ml.t3.medium"],
    "training_instance_count": [0, 17],
    "training_volume_gb": [10, 20000],
    "method": ["qlora", ""],
    "epochs": [0, 101, "three"],
    "learning_rate": [0, -1e-5, 0.5, "fast"],
    "block_size": [32, 4096],
    "per_device_train_batch_size": [0, 65],
    "gradient_accumulation_steps": [0, 2000],
    "use_spot": ["maybe"],
    "max_run_seconds": [60, 3_000_000],
    "max_wait_seconds": [60, 3_000_000],
    "tuning_enabled": ["on"],
    "tuning_max_jobs": [0, 101],
    "tuning_parallel_jobs": [0, 11],
    "tuning_learning_rate_min": [0, 1],
    "tuning_learning_rate_max": [0, 1],
    "deploy_base_endpoint": ["sure"],
    "fine_tuned_job": ["has space", "-leading-dash", "x" * 64],
    "endpoint_instance_type": ["ml.g5.13xlarge", "ml.p3dn.24xlarge"],
    "endpoint_min_capacity": [0, 11],
    "endpoint_max_capacity": [0, 11],
    "endpoint_target_invocations": [0, 10_001],
    "endpoint_scale_in_cooldown_seconds": [-1, 3601],
    "endpoint_scale_out_cooldown_seconds": [-1, 3601],
    "idle_alarm_hours": [0, 25],
}


def test_every_key_has_bad_value_cases() -> None:
    assert set(BAD_VALUES) == {f.name for f in dataclasses.fields(Settings)}


@pytest.mark.parametrize(("key", "value"), [(key, value) for key, values in BAD_VALUES.items() for value in values])
def test_bad_value_names_key_value_and_allowed(key: str, value: object) -> None:
    with pytest.raises(SettingError) as caught:
        load_settings({**BASE, key: value})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"invalid setting {key}=")
    assert repr(value) in message or str(value) in message
    assert "expected " in message
    assert caught.value.key == key


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"max_run_seconds": 7200, "max_wait_seconds": 3600}, "max_wait_seconds"),
        ({"tuning_max_jobs": 2, "tuning_parallel_jobs": 3}, "tuning_parallel_jobs"),
        ({"tuning_learning_rate_min": 1e-4, "tuning_learning_rate_max": 1e-5}, "tuning_learning_rate_min"),
        ({"endpoint_min_capacity": 3, "endpoint_max_capacity": 2}, "endpoint_min_capacity"),
    ],
)
def test_cross_key_rules(overrides: dict[str, object], key: str) -> None:
    with pytest.raises(SettingError, match=f"^invalid setting {key}="):
        load_settings({**BASE, **overrides})


def test_unknown_key_is_an_error_with_a_suggestion() -> None:
    with pytest.raises(SettingError) as caught:
        load_settings({**BASE, "doc_cuont": "5"})
    assert str(caught.value) == (
        "unknown setting doc_cuont='5': not one of the keys in the README's table (did you mean doc_count?)"
    )


def test_region_is_required() -> None:
    with pytest.raises(SettingError, match=r"^invalid setting region=''"):
        load_settings({})


def test_cdk_owned_context_keys_are_ignored() -> None:
    settings = load_settings(CDK_CONTEXT)
    assert settings.region == "us-east-1"


def test_command_line_strings_are_coerced() -> None:
    settings = load_settings(
        {**BASE, "doc_count": "250", "use_spot": "TRUE", "learning_rate": "3e-5", "fine_tuned_job": " job-1 "}
    )
    assert (settings.doc_count, settings.use_spot, settings.learning_rate) == (250, True, 3e-5)
    assert settings.fine_tuned_job == "job-1"


def test_defaults_deploy_no_endpoint() -> None:
    settings = load_settings(BASE)
    assert not settings.endpoints_requested
    assert settings.retain_data is False


def test_table_documents_every_key() -> None:
    rows = settings_table()
    assert [row["key"] for row in rows] == [f.name for f in dataclasses.fields(Settings)]
    assert all(row["allowed"] and row["meaning"] and row["group"] for row in rows)


# --- the committed settings files (config/<env>.json) ------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(text)
    return path


def test_every_committed_settings_file_loads() -> None:
    names = environments()
    assert DEFAULT_ENV in names
    for name in names:
        assert load_environment({ENV_KEY: name}).region


def test_cdk_json_holds_no_setting() -> None:
    check_cdk_json()
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    assert not [key for key in context if key in {f.name for f in dataclasses.fields(Settings)}]


def test_a_setting_in_cdk_json_is_refused_naming_it(tmp_path: Path) -> None:
    cdk_json = write(tmp_path, "cdk", json.dumps({"context": {"@aws-cdk/x:y": True, "epochs": 1}}))
    with pytest.raises(SettingError) as caught:
        check_cdk_json(cdk_json)
    assert str(caught.value) == (
        "cdk.json: epochs is a setting: it belongs in config/<env>.json, not in cdk.json's context"
    )


def test_the_file_sets_what_it_names_and_the_defaults_the_rest(tmp_path: Path) -> None:
    write(tmp_path, "prod", json.dumps({"region": "eu-west-1", "epochs": 2}))
    settings = load_environment({ENV_KEY: "prod"}, tmp_path)
    assert (settings.region, settings.epochs, settings.doc_count) == ("eu-west-1", 2, Settings.doc_count)


def test_command_line_context_wins_over_the_file(tmp_path: Path) -> None:
    write(tmp_path, "default", json.dumps({"region": "us-east-1", "epochs": 2}))
    settings = load_environment({"epochs": "1", "@aws-cdk/core:flag": True}, tmp_path)
    assert settings.epochs == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"region": "us-east-1",}', "config-test/x.json: not valid JSON: Expecting property name"),
        ('["region"]', "config-test/x.json: expected a JSON object of settings, got list"),
        (
            '{"region": "us-east-1", "doc_cuont": 5}',
            "config-test/x.json: unknown setting doc_cuont=5: not one of the keys in the README's table "
            "(did you mean doc_count?)",
        ),
        (
            '{"region": "us-east-1", "epochs": 0}',
            "config-test/x.json: invalid setting epochs=0: expected an integer from 1 to 100",
        ),
        ('{"epochs": 2}', "config-test/x.json: invalid setting region='': expected an AWS region"),
        (
            '{"region": "us-east-1", "@aws-cdk/core:x": true}',
            "config-test/x.json: @aws-cdk/core:x is not a setting (CDK feature flags belong in cdk.json)",
        ),
    ],
)
def test_a_bad_file_is_one_line_naming_it(tmp_path: Path, text: str, message: str) -> None:
    folder = tmp_path / "config-test"
    folder.mkdir()
    write(folder, "x", text)
    with pytest.raises(SettingError) as caught:
        load_environment({ENV_KEY: "x"}, folder)
    assert "\n" not in str(caught.value)
    assert message in str(caught.value)
    assert str(caught.value).split(": ")[0].endswith("config-test/x.json")


def test_a_bad_command_line_value_is_not_blamed_on_the_file(tmp_path: Path) -> None:
    write(tmp_path, "default", json.dumps({"region": "us-east-1"}))
    with pytest.raises(SettingError) as caught:
        load_environment({"epochs": "0"}, tmp_path)
    assert str(caught.value) == "invalid setting epochs=0: expected an integer from 1 to 100"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ("prod", "ENV=prod: no settings file "),
        ("../cdk", "invalid environment ENV='../cdk': expected lowercase letters, digits and hyphens"),
    ],
)
def test_an_unknown_or_malformed_environment_is_one_line(tmp_path: Path, env: str, message: str) -> None:
    write(tmp_path, "default", json.dumps({"region": "us-east-1"}))
    with pytest.raises(SettingError) as caught:
        load_environment({ENV_KEY: env}, tmp_path)
    assert str(caught.value).startswith(message)
    if env == "prod":
        assert str(caught.value).endswith("prod.json (committed environments: default)")


def test_the_readme_table_marks_the_region_required() -> None:
    (region,) = [row for row in settings_table() if row["key"] == "region"]
    assert region["default"] == "(required)"


def test_python_m_config_check_checks_every_committed_file(capsys: pytest.CaptureFixture[str]) -> None:
    from config.__main__ import check

    assert check([]) == 0
    assert capsys.readouterr().out.splitlines() == [f"config/{name}.json: ok" for name in environments()]
    assert check(["nope"]) == 1
    assert capsys.readouterr().err.startswith("error: ENV=nope: no settings file")
