"""Requests checked against botocore's service model of their operation.

botocore's own ParamValidator checks member names, required members, types and minimums (not those of maps and
blobs, but no map or blob these operations take has a minimum above 0); it leaves the rest to the service: patterns,
maximum lengths and sizes, enums and the upper ends of ranges.
`problems` runs that validator, then checks only what it skips (so each problem is reported once) as the service
would (a pattern must match the whole value, the way the service's error messages quote it: `^pattern$`), plus the
documented limits that the models do not carry (`EXTRA_RULES`).
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
    ("aws-sdk:sagemaker", "describeTrainingJob"): ("sagemaker", "DescribeTrainingJob"),
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


def _at_most(shape: Shape, size: float, path: str, unit: str, found: list[str]) -> None:
    high = shape.metadata.get("max")
    if high is not None and size > high:
        found.append(f"{path}: {size}{unit}, expected at most {high}")


def _members(shape: Shape, value: Any, path: str) -> list[tuple[Shape, Any, str]]:
    """The parts of a structure, list or map value with their shapes (a map's keys too); none for a value of
    the wrong type, which the ParamValidator reports."""
    if shape.type_name == "structure" and isinstance(value, dict):
        members = shape.members  # type: ignore[attr-defined]
        return [(members[k], v, f"{path}.{k}") for k, v in value.items() if k in members]
    if shape.type_name == "list" and isinstance(value, list):
        return [(shape.member, v, f"{path}[{i}]") for i, v in enumerate(value)]  # type: ignore[attr-defined]
    if shape.type_name == "map" and isinstance(value, dict):
        key_shape, value_shape = shape.key, shape.value  # type: ignore[attr-defined]
        return [part for k, v in value.items() for part in ((key_shape, k, f"{path} key {k!r}"),
                                                             (value_shape, v, f"{path}[{k!r}]"))]  # fmt: skip
    return []


def _walk(shape: Shape, value: Any, path: str, found: list[str]) -> None:
    """What the ParamValidator leaves to the service: maximums, enums and patterns."""
    kind = shape.type_name
    if kind == "list" and isinstance(value, list):
        _at_most(shape, len(value), path, " items", found)
    elif kind == "map" and isinstance(value, dict):
        _at_most(shape, len(value), path, " entries", found)
    elif kind == "string" and isinstance(value, str):
        _at_most(shape, len(value), path, " characters", found)
        if shape.enum and value not in shape.enum:  # type: ignore[attr-defined]
            found.append(f"{path}: {value!r} is not one of {shape.enum}")  # type: ignore[attr-defined]
        pattern = shape.metadata.get("pattern")
        if pattern is not None and regex.fullmatch(pattern, value) is None:
            found.append(f"{path}: {value!r} does not match the pattern ^{pattern}$")
    elif kind in ("integer", "long", "float", "double") and type(value) in (int, float):
        _at_most(shape, value, path, "", found)
    elif kind == "blob" and isinstance(value, bytes | bytearray):
        _at_most(shape, len(value), path, " bytes", found)
    for member, item, item_path in _members(shape, value, path):
        _walk(member, item, item_path, found)
