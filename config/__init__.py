"""Configuration of the app: typed settings from CDK context, and the instance-type facts they draw on."""

from config.instance_types import HOSTING_INSTANCE_TYPES, TRAINING_INSTANCE_TYPES, InstanceFacts
from config.settings import SettingError, Settings, load_settings, settings_table

__all__ = [
    "HOSTING_INSTANCE_TYPES",
    "TRAINING_INSTANCE_TYPES",
    "InstanceFacts",
    "SettingError",
    "Settings",
    "load_settings",
    "settings_table",
]
