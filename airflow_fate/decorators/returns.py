"""What a TaskFlow stage function may return, read into what its stage runs.

A ``@task.fate_llm`` function returns one prompt, a batch of prompts, or the chat
messages of one prompt; a ``@task.fate_embed`` function returns texts; a
``@task.fate_rerank`` function returns documents (or the query and the documents). The
rules live here, without Airflow, so they are unit-tested on their own and each
rejection says what was returned and what is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

CHAT_ROLES = ("system", "user")
"""Roles a returned conversation may use: the device runtime generates from one system
prompt and one user prompt (`runtime.generate`), so a conversation is at most those two."""


class ReturnValueError(ValueError):
    """A stage function returned something its stage cannot run; the message says why."""


@dataclass(frozen=True, slots=True)
class Prompts:
    """The prompts a ``@task.fate_llm`` function returned.

    Attributes:
        prompts: user prompts, one generation each.
        system: the system message of a returned conversation, or None.
        single: one prompt was returned (a string or one conversation): the task returns
            one text rather than a list.
    """

    prompts: tuple[str, ...]
    system: str | None
    single: bool


def prompts_from(value: object) -> Prompts:
    """Read a generation function's return value.

    Accepted: a string (one prompt), a list of strings (a batch), or a list of chat
    messages ``[{"role": "system", "content": ...}, {"role": "user", "content": ...}]``
    (one prompt; the system message is optional).

    Raises:
        ReturnValueError: anything else, an empty prompt or an empty list.
    """
    if isinstance(value, str):
        return Prompts((_text(value, "the prompt"),), None, single=True)
    if isinstance(value, list | tuple):
        if not value:
            raise ReturnValueError(f"returned an empty {type(value).__name__}; {_PROMPT_FORMS}")
        if all(isinstance(v, str) for v in value):
            prompts = tuple(_text(v, f"prompt [{i}]") for i, v in enumerate(value))
            return Prompts(prompts, None, single=False)
        messages = [v for v in value if isinstance(v, Mapping)]
        if len(messages) == len(value):
            return _conversation(messages)
    raise ReturnValueError(f"returned {_kind(value)}; {_PROMPT_FORMS}")


def texts_from(value: object) -> list[str]:
    """Read an embedding function's return value: a string or a list of strings.

    Each text is embedded as returned (no line splitting), so vector ``i`` belongs to
    text ``i``; an empty text is an error rather than dropped for the same reason.

    Raises:
        ReturnValueError: anything else, an empty text or an empty list.
    """
    return _strings(value, "text", "return a text (str) or a list of texts (list[str])")


def rerank_from(value: object, query: str | None) -> tuple[str, list[str]]:
    """Read a rerank function's return value into ``(query, documents)``.

    With the decorator's ``query=`` the function returns the documents (a list of
    strings); without it, a ``(query, documents)`` tuple.

    Raises:
        ReturnValueError: a value of another shape, an empty query or document.
    """
    if query is not None:
        forms = "return the documents (list[str]); the query is the decorator's query="
        return _text(query, "query="), _strings(value, "document", forms)
    forms = "return (query, documents) as a tuple[str, list[str]], or give query= to the decorator"
    if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str)):
        raise ReturnValueError(f"returned {_kind(value)}; {forms}")
    return _text(value[0], "the query"), _strings(value[1], "document", forms)


_PROMPT_FORMS = (
    "return a prompt (str), a batch of prompts (list[str]) or the chat messages of one "
    "prompt (list of {'role': 'system' | 'user', 'content': str})"
)


def _conversation(messages: Sequence[Mapping[object, object]]) -> Prompts:
    roles: list[object] = []
    contents: list[str] = []
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if set(message) != {"role", "content"} or not isinstance(content, str):
            raise ReturnValueError(
                f"message [{i}] is {dict(message)!r}; each message is "
                "{'role': str, 'content': str}"
            )
        roles.append(role)
        contents.append(content)
    if roles == ["user"]:
        return Prompts((_text(contents[0], "the user message"),), None, single=True)
    if roles == ["system", "user"]:
        system = _text(contents[0], "the system message")
        return Prompts((_text(contents[1], "the user message"),), system, single=True)
    raise ReturnValueError(
        f"returned messages with roles {roles}; a stage generates from an optional "
        "'system' message followed by one 'user' message (return a list of prompts for a "
        "batch)"
    )


def _strings(value: object, noun: str, forms: str) -> list[str]:
    if isinstance(value, str):
        return [_text(value, f"the {noun}")]
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return [_text(v, f"{noun} [{i}]") for i, v in enumerate(value)]
    if isinstance(value, list | tuple) and not value:
        raise ReturnValueError(f"returned no {noun}s (an empty {type(value).__name__}); {forms}")
    raise ReturnValueError(f"returned {_kind(value)}; {forms}")


def _text(value: str, what: str) -> str:
    if not value.strip():
        raise ReturnValueError(f"{what} is empty")
    return value


def _kind(value: object) -> str:
    """A short description of a value for an error (type, and item types of a list)."""
    if isinstance(value, list | tuple):
        items = sorted({type(v).__name__ for v in value})
        return f"a {type(value).__name__} of {', '.join(items) or 'nothing'}"
    return f"a {type(value).__name__}"
