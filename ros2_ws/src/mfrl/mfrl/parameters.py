"""Declare a node's config dataclass as ROS parameters, with types, descriptions and validation."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Collection
from typing import Any, Generic, TypeVar, get_type_hints

from rcl_interfaces.msg import ParameterDescriptor, ParameterType, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

ConfigT = TypeVar("ConfigT")

_TYPES = {
    bool: ParameterType.PARAMETER_BOOL,
    int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE,
    str: ParameterType.PARAMETER_STRING,
    list[float]: ParameterType.PARAMETER_DOUBLE_ARRAY,
    list[str]: ParameterType.PARAMETER_STRING_ARRAY,
}


def _field_help(config_cls: type[Any]) -> dict[str, str]:
    """Each field's line in the class docstring's `Attributes:` section."""
    found: dict[str, str] = {}
    for line in (config_cls.__doc__ or "").splitlines():
        match = re.match(r"\s+(\w+): (.+)", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


class ConfigParameters(Generic[ConfigT]):
    """Keeps `config` equal to the node's parameters; a set that the dataclass rejects is refused with its message.

    Args:
        node: the node that declares the parameters.
        config_cls: a frozen dataclass whose `__post_init__` validates (raises ValueError).
        on_change: called with the new config after an accepted change.
        read_only: fields that the node reads only at start-up (True: every field). They are declared
            read-only, so that `ros2 param set` refuses them instead of accepting a change that does
            nothing; they are set from the command line or a parameter file.
    """

    def __init__(
        self,
        node: Node,
        config_cls: type[ConfigT],
        on_change: Callable[[ConfigT], None] | None = None,
        read_only: Collection[str] | bool = (),
    ) -> None:
        self._node = node
        self._cls = config_cls
        self._on_change = on_change
        hints = get_type_hints(config_cls)
        helps = _field_help(config_cls)
        default = config_cls()
        values = {}
        fields = [f.name for f in dataclasses.fields(config_cls)]  # type: ignore[arg-type]
        fixed = set(fields) if read_only is True else set(read_only or ())
        if fixed - set(fields):
            raise ValueError(f"read_only names unknown parameters: {sorted(fixed - set(fields))}")
        for f in dataclasses.fields(config_cls):  # type: ignore[arg-type]
            descriptor = ParameterDescriptor(
                name=f.name,
                type=_TYPES[hints[f.name]],
                description=helps.get(f.name, "") + (" (read at start-up)" if f.name in fixed else ""),
                read_only=f.name in fixed,
            )
            initial = getattr(default, f.name)
            # An empty list says nothing of its element type: declare the type, and read "unset" as the default.
            declared = Parameter.Type(descriptor.type) if initial == [] else initial
            value = node.declare_parameter(f.name, declared, descriptor).value
            values[f.name] = initial if value is None else _python_value(value, hints[f.name])
        try:
            self.config: ConfigT = config_cls(**values)
        except ValueError as exc:
            node.get_logger().fatal(f"invalid parameters: {exc}")
            raise
        node.add_on_set_parameters_callback(self._validate)

    def _validate(self, parameters: list[Parameter]) -> SetParametersResult:
        hints = get_type_hints(self._cls)
        changes = {p.name: _python_value(p.value, hints[p.name]) for p in parameters if p.name in hints}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            candidate = dataclasses.replace(self.config, **changes)  # type: ignore[type-var]
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self.config = candidate
        if self._on_change is not None:
            self._on_change(candidate)
        return SetParametersResult(successful=True)


def _python_value(value: Any, annotation: Any) -> Any:
    """A parameter value in the dataclass field's type (arrays become lists, ints in float fields floats)."""
    if annotation is float and isinstance(value, int):
        return float(value)
    if annotation == list[float]:
        return [float(v) for v in value]
    if annotation == list[str]:
        return [str(v) for v in value]
    return value
