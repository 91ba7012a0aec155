"""Requests checked against botocore's service model of their operation.

botocore's own ParamValidator checks member names, required members, types and minimums; it leaves the rest to the
service: patterns, maximum lengths and sizes, enums and the upper ends of ranges. `problems` runs that validator and
then checks those too, as the service would (a pattern must match the whole value, the way the service's error
messages quote it: `^pattern$`), plus the documented limits that the models do not carry (`EXTRA_RULES`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import botocore.session
import regex  # AWS patterns use \\p{...} classes, which `re` lacks
from botocore.model import OperationModel, Shape
from botocore.validate import ParamValidator

# Step Functions' resources (as moto's history names them: resource type, resource) and the operations they call.
OPERATIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("lambda", "invoke"): ("lambda", "Invoke"),
    ("sns", "publish"): ("sns", "Publish"),
    ("sagemaker", "createTrainingJob.sync"): ("sagemaker", "CreateTrainingJob"),
    ("sagemaker", "createHyperParameterTuningJob.sync"): ("sagemaker", "CreateHyperParameterTuningJob"),
    ("aws-sdk:sagemaker", "describeHyperParameterTuningJob"): ("sagemaker", "DescribeHyperParameterTuningJob"),
}


def _sns_subject(value: Any) -> list[str]:
    # SNS Publish API reference: "Subjects must be UTF-8 text with no line breaks or control characters, and less
    # than 100 characters long."
    found = []
    if len(value) >= 100:
        found.append(f"{len(value)} characters, expected fewer than 100")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        found.append("a line break or control character")
    return found


EXTRA_RULES: dict[tuple[str, str, str], Callable[[Any], list[str]]] = {
    ("sns", "Publish", "Subject"): _sns_subject,
}


@cache
def operation_model(service: str, operation: str) -> OperationModel:
    return botocore.session.get_session().get_service_model(service).operation_model(operation)


def operation_for(resource_type: str, resource: str) -> tuple[str, str]:
    key = (resource_type, resource)
    if key not in OPERATIONS:
        raise AssertionError(f"no botocore operation known for the Task resource {key}: add it to OPERATIONS")
    return OPERATIONS[key]


def as_sent(shape: Shape, value: Any) -> Any:
    """The value as Step Functions sends it: a blob given as JSON (Lambda's Payload) is serialized."""
    if shape.type_name == "blob" and not isinstance(value, bytes | bytearray):
        return (value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))).encode()
    if shape.type_name == "structure" and isinstance(value, dict):
        return {k: as_sent(shape.members[k], v) if k in shape.members else v for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [as_sent(shape.member, v) for v in value]  # type: ignore[attr-defined]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: as_sent(shape.value, v) for k, v in value.items()}  # type: ignore[attr-defined]
    return value


def problems(service: str, operation: str, params: Mapping[str, Any]) -> list[str]:
    """Every way `params` breaks the operation's model (empty when the service would accept its shape)."""
    model = operation_model(service, operation)
    sent = as_sent(model.input_shape, dict(params))
    report = ParamValidator().validate(sent, model.input_shape)
    found = [f"botocore: {line}" for line in report.generate_report().splitlines()] if report.has_errors() else []
    _walk(model.input_shape, sent, operation, found)
    for (rule_service, rule_operation, member), rule in EXTRA_RULES.items():
        if (rule_service, rule_operation) == (service, operation) and member in params:
            found += [f"{operation}.{member}: {problem}" for problem in rule(params[member])]
    return found


def _bounds(shape: Shape, size: int, path: str, unit: str, found: list[str]) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        found.append(f"{path}: {size} {unit}, expected at least {low}")
    if high is not None and size > high:
        found.append(f"{path}: {size} {unit}, expected at most {high}")


def _walk(shape: Shape, value: Any, path: str, found: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            found.append(f"{path}: expected an object ({shape.name}), got {type(value).__name__}")
            return
        for name in value:
            if name not in shape.members:  # type: ignore[attr-defined]
                found.append(f"{path}.{name}: not a member of {shape.name}")
        for name in shape.required_members:  # type: ignore[attr-defined]
            if name not in value:
                found.append(f"{path}.{name}: required by {shape.name}")
        for name, item in value.items():
            if name in shape.members:  # type: ignore[attr-defined]
                _walk(shape.members[name], item, f"{path}.{name}", found)  # type: ignore[attr-defined]
    elif kind == "list":
        if not isinstance(value, list):
            found.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        _bounds(shape, len(value), path, "items", found)
        for index, item in enumerate(value):
            _walk(shape.member, item, f"{path}[{index}]", found)  # type: ignore[attr-defined]
    elif kind == "map":
        if not isinstance(value, dict):
            found.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        _bounds(shape, len(value), path, "entries", found)
        for key, item in value.items():
            _walk(shape.key, key, f"{path} key {key!r}", found)  # type: ignore[attr-defined]
            _walk(shape.value, item, f"{path}[{key!r}]", found)  # type: ignore[attr-defined]
    elif kind == "string":
        if not isinstance(value, str):
            found.append(f"{path}: expected a string, got {type(value).__name__}")
            return
        _bounds(shape, len(value), path, "characters", found)
        if shape.enum and value not in shape.enum:  # type: ignore[attr-defined]
            found.append(f"{path}: {value!r} is not one of {shape.enum}")  # type: ignore[attr-defined]
        pattern = shape.metadata.get("pattern")
        if pattern is not None and regex.fullmatch(pattern, value) is None:
            found.append(f"{path}: {value!r} does not match the pattern ^{pattern}$")
    elif kind in ("integer", "long", "float", "double"):
        numeric = (int,) if kind in ("integer", "long") else (int, float)
        if isinstance(value, bool) or not isinstance(value, numeric):
            found.append(f"{path}: expected a {kind}, got {value!r}")
            return
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            found.append(f"{path}: {value} is outside {low}..{high}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            found.append(f"{path}: expected a boolean, got {value!r}")
    elif kind == "blob":
        _bounds(shape, len(value), path, "bytes", found)
