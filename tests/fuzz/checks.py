"""What a clean rejection is, checked the same way for every fuzzed input.

A loader may accept a document or raise the project's own error; nothing else may
escape. The error must name the file (or task), a field path that exists in the document
(or is the one field missing from it) and a reason on one line, so a user can find the
spot without a traceback.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from airflow_fate.errors import InputError

CASES: Counter[str] = Counter()
"""Cases run per fuzz target (each property body counts itself)."""

_INDEX = re.compile(r"\[(\d+)\]")
_DECODER = json.JSONDecoder()


def assert_one_line(message: str) -> None:
    assert message.strip(), "empty message"
    assert "\n" not in message, f"message spans lines: {message!r}"
    assert "Traceback" not in message, message
    # pydantic's own wording leaks the internal class name; a user never wrote it
    assert "instance of" not in message, message
    assert "[key]" not in message and "function-" not in message, message


def assert_input_error(exc: BaseException, source: str, document: Any) -> None:
    """``exc`` is an `InputError` on ``source`` whose path leads into ``document``."""
    assert isinstance(exc, InputError), f"{type(exc).__name__} escaped: {exc!r}"
    assert exc.source == source, (exc.source, source)
    assert_one_line(str(exc))
    assert exc.reason.strip(), exc
    if isinstance(document, Mapping) and document:
        assert exc.path, f"a field of a mapping document was rejected without a path: {exc}"
    if exc.path and isinstance(document, Mapping):
        assert path_resolves(document, exc.path), f"path {exc.path!r} not in document: {exc}"


def path_resolves(document: Any, path: str) -> bool:
    """Whether ``a.b[3].c`` walks through ``document``; the last step may be missing.

    Keys may themselves hold dots (``llama-3.1-8b``), so at each mapping the longest key
    that prefixes the rest of the path is taken.
    """
    node: Any = document
    rest = path
    while rest:
        if rest.startswith('["'):
            key, end = _DECODER.raw_decode(rest, 1)
            rest = rest[end + 1 :].removeprefix(".")
            if not isinstance(node, Mapping) or key not in node:
                return not rest
            node = node[key]
            continue
        if rest.startswith("["):
            m = _INDEX.match(rest)
            if m is None:
                return False
            i = int(m.group(1))
            rest = rest[m.end() :].removeprefix(".")
            if isinstance(node, list) and i < len(node):
                node = node[i]
                continue
            if isinstance(node, Mapping) and i in node:
                node = node[i]
                continue
            return not rest
        if not isinstance(node, Mapping):
            return False
        keys = sorted((str(k) for k in node if _prefixes(str(k), rest)), key=len, reverse=True)
        if not keys:
            head = re.split(r"[.\[]", rest, maxsplit=1)[0]
            return head == rest  # only the last step may be absent
        key = keys[0]
        node = next(v for k, v in node.items() if str(k) == key)
        rest = rest[len(key) :].removeprefix(".")
    return True


def _prefixes(key: str, rest: str) -> bool:
    return bool(key) and (rest == key or rest.startswith((key + ".", key + "[")))
