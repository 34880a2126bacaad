"""The ``[fate]`` section as Airflow describes configuration, derived from `FateSettings`.

Airflow learns a provider's options from its provider info (``config``: per option a
description, type, default, example and ``version_added``, the ``config.yml`` format)
and shows them in ``airflow config list``. Writing that table by hand beside
`FateSettings` would let the two drift, so it is computed from the pydantic fields:
each field's ``description`` and first ``examples`` entry, its annotation for the type,
its default. A field without a description or an example is an error here, not a blank
line in ``airflow config list``. The README's option table comes from the same place
(``python -m airflow_fate.executor.config_section`` prints it).

No Airflow imports: Airflow calls this while it discovers providers.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic.fields import FieldInfo

from airflow_fate.executor.settings import SECTION, FateSettings

FIRST_RELEASE = "0.1.0"
"""``version_added`` of a field that does not name one (``json_schema_extra``)."""

SECTION_DESCRIPTION = (
    "FateExecutor (airflow-fate): where the planner places LLM pipeline stages on GPUs, "
    "and how their tasks are launched."
)

AirflowType = Literal["string", "boolean", "integer", "float"]
_SCALAR_TYPES: dict[type, AirflowType] = {
    bool: "boolean",
    int: "integer",
    float: "float",
    str: "string",
    Path: "string",
}


class OptionError(TypeError):
    """A `FateSettings` field that cannot be described as an Airflow option."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"FateSettings.{name} ([{SECTION}] {name}): {reason}")


def config_section() -> dict[str, dict[str, Any]]:
    """The provider info's ``config`` entry: ``{"fate": {description, options}}``."""
    options = {name: option(name, field) for name, field in FateSettings.model_fields.items()}
    return {SECTION: {"description": SECTION_DESCRIPTION, "options": options}}


def option(name: str, field: FieldInfo) -> dict[str, Any]:
    """One option in Airflow's ``config.yml`` form.

    Defaults and examples are written as Airflow's own ``config.yml`` writes them, as
    strings (``"True"``, ``"0.5"``), because Airflow stores them in a ``ConfigParser``
    and hands them back as the strings `load_settings` parses. An unset default is
    ``None`` (the option is absent, `load_settings` sees nothing).

    Raises:
        OptionError: the field has no description, no example, or a type Airflow
            cannot express.
    """
    if not field.description:
        raise OptionError(name, "no description (Field(description=...))")
    if not field.examples:
        raise OptionError(name, "no example (Field(examples=[...]))")
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    description = field.description
    if field.is_required():
        description = f"Required. {description}"
    entry: dict[str, Any] = {
        "description": description,
        "version_added": str(extra.get("version_added", FIRST_RELEASE)),
        "type": airflow_type(name, field.annotation),
        "example": as_config_text(field.examples[0]),
        "default": None if field.is_required() else as_config_text(field.get_default()),
    }
    if extra.get("sensitive") is True:
        entry["sensitive"] = True
    return entry


def airflow_type(name: str, annotation: Any) -> AirflowType:
    """Airflow's option type of a field annotation (``X | None`` is ``X``; paths and
    ``Literal`` choices of strings are strings).

    Raises:
        OptionError: a union of several types, a non-string ``Literal``, or a type with
            no Airflow counterpart (lists, mappings).
    """
    if get_origin(annotation) in (Union, types.UnionType):
        annotation, *others = [a for a in get_args(annotation) if a is not type(None)]
        if others:
            raise OptionError(name, "a union of several types has no Airflow option type")
    if get_origin(annotation) is Literal:
        if all(isinstance(choice, str) for choice in get_args(annotation)):
            return "string"
        raise OptionError(name, "only Literal choices of strings map to an Airflow option")
    found = _SCALAR_TYPES.get(annotation)
    if found is None:
        raise OptionError(name, f"{annotation!r} has no Airflow option type")
    return found


def as_config_text(value: object) -> str | None:
    """A value as it reads in ``airflow.cfg`` (``None`` stays unset)."""
    if value is None:
        return None
    return str(value)


def options_markdown() -> str:
    """The README's table of ``[fate]`` options (one row per option, in field order)."""
    rows = ["| Option | Type | Default | Example | Description |", "|---|---|---|---|---|"]
    for name, field in FateSettings.model_fields.items():
        entry = option(name, field)
        default = "(required)" if field.is_required() else _cell_code(entry["default"])
        rows.append(
            f"| `{name}` | {entry['type']} | {default} | {_cell_code(entry['example'])} "
            f"| {_cell_text(entry['description'])} |"
        )
    return "\n".join(rows) + "\n"


def _cell_code(value: str | None) -> str:
    return "(unset)" if value is None else f"`{_cell_text(value)}`"


def _cell_text(text: str) -> str:
    """Markdown table cells end at ``|``."""
    return text.replace("|", "\\|")


if __name__ == "__main__":
    print(options_markdown(), end="")
