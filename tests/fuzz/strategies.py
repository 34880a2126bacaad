"""Hypothesis strategies for fuzzed input: valid documents bent out of shape, and garbage.

Two families:

- ``mutated(base)``: a valid document with one to three edits at random places (a value
  replaced by a value of another type or an extreme number, a key deleted or renamed, an
  unknown key added, a list item duplicated): structurally plausible, semantically wrong;
- ``garbage``: random bytes, random text and fragments of YAML syntax, deep nesting.

Documents are written as YAML or JSON by ``render``, as a user's editor would.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from typing import Any

import yaml
from hypothesis import strategies as st

MARKUP = "<script>alert(1)</script>"

NASTY_TEXT = st.sampled_from(
    [
        "",
        " ",
        "-1",
        "0",
        "1e309",
        ".inf",
        "NaN",
        "null",
        "~",
        "yes",
        MARKUP,
        "a" * 300,
        "x\ny",
        "\u0000",
        "\ud7ff\u202e",
        "../../etc/passwd",
        "gpu.nvidia.com/../x",
    ]
)

EXTREME_NUMBERS = st.sampled_from(
    [
        0,
        -1,
        1,
        2**31,
        2**63,
        -(2**63),
        10**18,
        10**400,
        0.0,
        -0.0,
        1e-320,
        1e-9,
        1e308,
        -1e308,
        math.inf,
        -math.inf,
        math.nan,
        0.5,
        True,
        False,
    ]
)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    NASTY_TEXT,
    EXTREME_NUMBERS,
)

JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), NASTY_TEXT), inner, max_size=4),
    ),
    max_leaves=12,
)
"""Any value a YAML or JSON document can hold (string keys), small."""

YAML_FRAGMENTS = st.sampled_from(
    [
        "{",
        "}",
        "[",
        "]",
        "- ",
        ": ",
        "? ",
        "&a ",
        "*a",
        "*b",
        "!!python/object/apply:os.system ['true']",
        "!!binary ",
        "!!float ",
        "%YAML 1.2\n",
        "---\n",
        "...\n",
        "\t",
        "\n",
        "  ",
        "#",
        "'",
        '"',
        "|",
        ">",
        "version: 1\n",
        "nodes:\n",
        "models:\n",
        "devices:\n",
        "workflows:\n",
        ".inf",
        "0x1F",
        "1_000",
        "2001-12-14",
        "\ufeff",
    ]
)

GARBAGE = st.one_of(
    st.binary(max_size=200).map(lambda b: ("bytes", b)),
    st.text(max_size=200).map(lambda t: ("text", t)),
    st.lists(YAML_FRAGMENTS, max_size=20).map(lambda fs: ("text", "".join(fs))),
    st.integers(min_value=50, max_value=3000).map(lambda n: ("text", "[" * n + "]" * n)),
    st.integers(min_value=50, max_value=3000).map(lambda n: ("text", "a:\n" + "- " * n + "x")),
)
"""``(kind, payload)``: raw bytes or text for a file, with no structure promised."""


Path_ = tuple[Any, ...]


def _paths(doc: Any, at: Path_ = ()) -> list[Path_]:
    """Every location in a JSON-like tree, the root included."""
    out = [at]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.extend(_paths(v, (*at, k)))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.extend(_paths(v, (*at, i)))
    return out


def _get(doc: Any, path: Path_) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _numeric_twist(value: Any) -> st.SearchStrategy[Any]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return EXTREME_NUMBERS
    return st.sampled_from([0, -value, value * 10**9, value / 1e9, str(value), [value]])


@st.composite
def mutated(
    draw: st.DrawFn, base: dict[str, Any], names: st.SearchStrategy[str] | None = None
) -> dict[str, Any] | Any:
    """``base`` with one to three random edits (see the module docstring).

    ``names`` supplies plausible-but-wrong identifiers (a model or node another part of
    the document does not define), which exercise the cross-reference checks.
    """
    doc: Any = copy.deepcopy(base)
    swaps = names if names is not None else NASTY_TEXT
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        op = draw(
            st.sampled_from(["set", "twist", "name", "delete", "add", "rename", "dup", "wrap"])
        )
        if not path:
            if op in ("set", "wrap"):
                doc = draw(JSON_VALUES) if op == "set" else [doc]
            continue
        parent, last = _get(doc, path[:-1]), path[-1]
        value = parent[last]
        if op == "set":
            parent[last] = draw(JSON_VALUES)
        elif op == "twist":
            parent[last] = draw(_numeric_twist(value))
        elif op == "name":
            parent[last] = draw(swaps)
        elif op == "delete":
            del parent[last]
        elif op == "add" and isinstance(value, dict):
            value[draw(st.one_of(st.text(max_size=8), NASTY_TEXT, swaps))] = draw(JSON_VALUES)
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(st.one_of(swaps, NASTY_TEXT))] = parent.pop(last)
        elif op == "dup" and isinstance(value, list) and value:
            value.append(copy.deepcopy(value[draw(st.integers(0, len(value) - 1))]))
        elif op == "wrap":
            parent[last] = [value] if not isinstance(value, list) else {"x": value}
    return doc


def render(doc: Any, fmt: str) -> str:
    """``doc`` as a user's YAML or JSON file (YAML keeps .inf/.nan, JSON Infinity/NaN)."""
    if fmt == "json":
        return json.dumps(doc, allow_nan=True)
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def documents(
    base: dict[str, Any], names: st.SearchStrategy[str] | None = None, fmt: str = "yaml"
) -> st.SearchStrategy[tuple[str, bytes]]:
    """File contents for a loader: mostly mutated ``base`` documents, some garbage."""

    def encode(kind_payload: tuple[str, Any]) -> tuple[str, bytes]:
        kind, payload = kind_payload
        if kind == "bytes":
            return kind, payload
        return kind, str(payload).encode("utf-8", "surrogatepass")

    as_doc: Callable[[Any], tuple[str, Any]] = lambda d: ("doc", render(d, fmt))  # noqa: E731
    return st.one_of(
        mutated(base, names).map(as_doc),
        mutated(base, names).map(as_doc),
        mutated(base, names).map(as_doc),
        JSON_VALUES.map(as_doc),
        GARBAGE,
    ).map(encode)
