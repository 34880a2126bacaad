"""The ``[fate]`` section Airflow is told about is `FateSettings`, field by field.

Parametrised over `FateSettings.model_fields` at collection time, so a field added to
the settings is compared here without touching this file, and fails here when it lacks
a description or an example.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import Field
from pydantic.fields import FieldInfo

from airflow_fate.executor.config_section import (
    FIRST_RELEASE,
    OptionError,
    airflow_type,
    config_section,
    option,
    options_markdown,
)
from airflow_fate.executor.settings import SECTION, FateSettings, load_settings

README = Path(__file__).resolve().parents[3] / "README.md"
FIELDS = list(FateSettings.model_fields)
REQUIRED = {name: "x" for name, f in FateSettings.model_fields.items() if f.is_required()}
DEFAULTED = [name for name in FIELDS if name not in REQUIRED]
# What Airflow's conf.getboolean accepts, and how its config.yml spells a boolean default.
AIRFLOW_BOOLEANS = {"True", "False"}


def options() -> dict[str, dict[str, Any]]:
    section = config_section()
    assert list(section) == [SECTION]
    opts: dict[str, dict[str, Any]] = section[SECTION]["options"]
    return opts


def airflow_getter(values: dict[str, str | None]):  # type: ignore[no-untyped-def]
    """``conf.get(section, key, fallback=None)`` over a section of option -> text."""
    return lambda section, key: values.get(key) if section == SECTION else None


def test_every_field_is_an_option_in_field_order() -> None:
    assert list(options()) == FIELDS


@pytest.mark.parametrize("name", FIELDS)
def test_field_has_description_and_example(name: str) -> None:
    field = FateSettings.model_fields[name]
    assert field.description, f"FateSettings.{name}: add Field(description=...)"
    assert field.examples, f"FateSettings.{name}: add Field(examples=[...])"


@pytest.mark.parametrize("name", FIELDS)
def test_option_matches_field(name: str) -> None:
    field = FateSettings.model_fields[name]
    entry = options()[name]
    prefix = "Required. " if field.is_required() else ""
    assert entry["description"] == prefix + str(field.description)
    assert entry["version_added"] == FIRST_RELEASE or re.fullmatch(
        r"\d+\.\d+\.\d+", entry["version_added"]
    )
    assert entry["example"] == str(field.examples[0])  # type: ignore[index]
    if field.is_required():
        assert entry["default"] is None
    elif field.default is None:
        assert entry["default"] is None, "an unset default must stay unset in Airflow"
    else:
        assert isinstance(entry["default"], str)


@pytest.mark.parametrize("name", DEFAULTED)
def test_airflow_default_reads_back_as_the_settings_default(name: str) -> None:
    """What Airflow hands the executor for an option nobody set is the field's default."""
    text = {n: e["default"] for n, e in options().items()}
    # The cluster comes from a file, or (its default, unset) from Kubernetes discovery.
    source = {"launcher": "kubernetes"} if name == "cluster" else {"cluster": "c.yaml"}
    settings = load_settings(airflow_getter({**text, **REQUIRED, **source}))
    assert getattr(settings, name) == FateSettings.model_fields[name].get_default()


@pytest.mark.parametrize("name", FIELDS)
def test_example_is_a_valid_value_of_the_declared_type(name: str) -> None:
    entry = options()[name]
    assert_reads_as(entry["type"], entry["example"])
    checked = FateSettings.model_validate({**REQUIRED, name: entry["example"]})
    assert getattr(checked, name) is not None


@pytest.mark.parametrize("name", [n for n in DEFAULTED if options()[n]["default"] is not None])
def test_default_has_the_declared_type(name: str) -> None:
    entry = options()[name]
    assert_reads_as(entry["type"], entry["default"])


def assert_reads_as(kind: str, text: str) -> None:
    """``text`` is what Airflow's typed getters accept for ``kind``."""
    if kind == "boolean":
        assert text in AIRFLOW_BOOLEANS
    elif kind == "integer":
        assert str(int(text)) == text
    elif kind == "float":
        float(text)
    else:
        assert kind == "string"


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        pytest.param(bool, "boolean", id="bool"),
        pytest.param(int | None, "integer", id="optional-int"),
        pytest.param(float, "float", id="float"),
        pytest.param(Path | None, "string", id="path"),
        pytest.param(Literal["a", "b"], "string", id="literal"),
    ],
)
def test_airflow_type(annotation: Any, expected: str) -> None:
    assert airflow_type("x", annotation) == expected


@pytest.mark.parametrize(
    "annotation",
    [
        pytest.param(list[str], id="list"),
        pytest.param(int | str, id="union"),
        pytest.param(Literal[1, 2], id="int-literal"),
    ],
)
def test_types_airflow_cannot_express_are_refused(annotation: Any) -> None:
    with pytest.raises(OptionError, match=r"FateSettings\.x \(\[fate\] x\)"):
        airflow_type("x", annotation)


@pytest.mark.parametrize(
    ("field", "missing"),
    [
        pytest.param(Field(default=1, examples=[2]), "no description", id="description"),
        pytest.param(Field(default=1, description="d"), "no example", id="example"),
    ],
)
def test_undocumented_field_is_an_error(field: Any, missing: str) -> None:
    info = FieldInfo.from_annotated_attribute(int, field)
    with pytest.raises(OptionError, match=f"FateSettings.new_option .*: {missing}"):
        option("new_option", info)


def test_sensitive_and_version_added_come_from_json_schema_extra() -> None:
    info = FieldInfo.from_annotated_attribute(
        str,
        Field(
            default="a",
            description="d",
            examples=["b"],
            json_schema_extra={"sensitive": True, "version_added": "0.2.0"},
        ),
    )
    entry = option("secret", info)
    assert (entry["sensitive"], entry["version_added"]) == (True, "0.2.0")
    assert "sensitive" not in options()["policy"]


def test_readme_option_table_is_generated() -> None:
    text = README.read_text(encoding="utf-8")
    start, end = "<!-- fate-options:start -->\n", "<!-- fate-options:end -->"
    assert start in text and end in text, "README.md lost the [fate] option table markers"
    table = text.split(start, 1)[1].split(end, 1)[0]
    assert table.strip() == options_markdown().strip(), (
        "README.md's [fate] table is stale: replace it with the output of "
        "`python -m airflow_fate.executor.config_section`"
    )
