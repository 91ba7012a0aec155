"""SageMaker metric definitions for train.py's log lines, defined once.

The CDK training stack imports METRIC_DEFINITIONS from here, so this module must stay free of torch and of
anything outside the standard library. train.py prints its metrics with format_metrics(), which writes the
dict shape that the Hugging Face Trainer prints (`{'loss': 2.3456, 'step': 10}`): the regexes below match it.

Values are always written as plain decimals with a dot (never `1e-05`, never `inf`), because each regex
captures `[0-9]+\\.[0-9]+`, the form that SageMaker parses as a float.
"""

import math
from collections.abc import Mapping

# The leading quote in each regex is what keeps `'loss'` from matching `'eval_loss'`.
_NUMBER = r"([0-9]+\.[0-9]+)"

METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": "train:loss", "Regex": rf"'loss': {_NUMBER}"},
    {"Name": "train:learning_rate", "Regex": rf"'learning_rate': {_NUMBER}"},
    {"Name": "train:grad_norm", "Regex": rf"'grad_norm': {_NUMBER}"},
    {"Name": "train:tokens_per_second", "Regex": rf"'tokens_per_second': {_NUMBER}"},
    {"Name": "train:epoch", "Regex": rf"'epoch': {_NUMBER}"},
    {"Name": "eval:loss", "Regex": rf"'eval_loss': {_NUMBER}"},
    {"Name": "eval:perplexity", "Regex": rf"'eval_perplexity': {_NUMBER}"},
    {"Name": "eval:runtime", "Regex": rf"'eval_runtime': {_NUMBER}"},
]


def format_value(value: float | int) -> str:
    """An int as is; a float as a plain decimal with up to 10 places and at least one digit after the dot."""
    if isinstance(value, int):
        return str(value)
    text = f"{value:.10f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def format_metrics(metrics: Mapping[str, float | int]) -> str:
    """`{'loss': 2.3456, 'step': 10}`; non-finite floats are left out (no regex could parse them)."""
    parts = [
        f"'{name}': {format_value(value)}"
        for name, value in metrics.items()
        if isinstance(value, int) or math.isfinite(value)
    ]
    return "{" + ", ".join(parts) + "}"
