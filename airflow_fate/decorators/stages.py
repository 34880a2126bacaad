"""The TaskFlow stage operators behind ``@task.fate_llm``, ``@task.fate_embed`` and
``@task.fate_rerank``.

The author's function builds the stage's input from its arguments (upstream results
arrive the TaskFlow way, as plain values) and returns it; the operator runs the function
in the task process, then runs what it returned on the devices the executor chose. Each
operator is Airflow's `DecoratedOperator` combined with the stage base its classic
operator is built on (`operators.llm`), so for the same arguments the planner metadata in
``executor_config["fate"]`` and the execution are the classic operator's.

The return value is unknown when the DAG is parsed, so the planner's estimate counts
``batch`` items (prompts, texts or documents) of ``context_tokens`` each, plus the
system prompt or query when the decorator gives them; ``input_tokens=`` replaces the
estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

from airflow.sdk import Context
from airflow.sdk.bases.decorator import DecoratedOperator, TaskDecorator, task_decorator_factory
from airflow.sdk.exceptions import AirflowFailException

from airflow_fate.decorators.returns import (
    Prompts,
    ReturnValueError,
    prompts_from,
    rerank_from,
    texts_from,
)
from airflow_fate.operators.llm import (
    DEFAULT_CONTEXT_TOKENS,
    EmbeddingStageBase,
    LLMStageBase,
    RerankStageBase,
)
from airflow_fate.operators.stage import estimate_tokens

T = TypeVar("T")


@contextmanager
def naming(decorator: str, task_id: str) -> Iterator[None]:
    """Re-raise an argument error with the decorator and task it was building.

    Without this a bad argument surfaces as, say, ``system_prefix_id= needs
    system_prompt=`` with a traceback into Airflow; with it the DAG's import error reads
    ``@task.fate_llm task 'answer': system_prefix_id= needs system_prompt=``.
    """
    try:
        yield
    except (TypeError, ValueError) as exc:
        kind = TypeError if isinstance(exc, TypeError) else ValueError
        raise kind(f"{decorator} task {task_id!r}: {exc}") from None


class StageFunctionOperator(DecoratedOperator):
    """The part the three decorated stages share: ``batch``, errors that name the task,
    calling the function and reading its return value.

    Args:
        batch: how many prompts, texts or documents the function returns; sizes the
            planner's estimate (a different count at run time is logged, not an error).
    """

    custom_operator_name: str = "@task.fate_stage"
    template_fields: Sequence[str] = DecoratedOperator.template_fields
    template_fields_renderers: ClassVar[dict[str, str]] = dict(
        DecoratedOperator.template_fields_renderers
    )

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        task_id: str,
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        batch: int = 1,
        **kwargs: Any,
    ) -> None:
        with naming(self.custom_operator_name, task_id):
            if batch < 1:
                raise ValueError(f"batch= must be >= 1, got {batch}")
            super().__init__(
                python_callable=python_callable,
                task_id=task_id,
                op_args=op_args,
                op_kwargs=op_kwargs,
                **kwargs,
            )
        self.batch = batch

    def _returned(self, context: Context, read: Callable[[object], T]) -> T:
        """Call the function with its arguments and read what it returned.

        A return value the stage cannot run fails the task without retries: calling the
        function again returns the same thing.
        """
        kwargs = self.determine_kwargs({**context, **self.op_kwargs})
        value = self.python_callable(*self.op_args, **kwargs)
        try:
            return read(value)
        except ReturnValueError as exc:
            raise AirflowFailException(
                f"{self.custom_operator_name} task {self.task_id!r}: the function {exc}"
            ) from None

    def _check_batch(self, count: int, noun: str) -> None:
        if count != self.batch:
            self.log.warning(
                "%s returned %d %s where batch=%d sized the planner's estimate; set batch=%d "
                "(or input_tokens=) for a closer plan",
                self.task_id,
                count,
                noun,
                self.batch,
                count,
            )


class FateLLMDecoratedOperator(StageFunctionOperator, LLMStageBase):
    """``@task.fate_llm``: generation from the prompt(s) the function returns.

    Arguments: `LLMStageOperator`'s except ``prompt``/``prompts``, plus ``batch``. The
    task returns one text for one prompt or conversation, a list for a list of prompts.
    """

    custom_operator_name: str = "@task.fate_llm"
    template_fields: Sequence[str] = (*DecoratedOperator.template_fields, "system_prompt")

    def __init__(self, *, batch: int = 1, **kwargs: Any) -> None:
        super().__init__(batch=batch, prompt_tokens=[0] * max(batch, 0), **kwargs)

    def execute(self, context: Context) -> str | list[str]:
        returned = self._returned(context, prompts_from)
        self._use_system_message(returned)
        self._check_batch(len(returned.prompts), "prompts")
        texts = self._generate(context, returned.prompts)
        return texts[0] if returned.single and texts else texts

    def _use_system_message(self, returned: Prompts) -> None:
        """A returned system message is the stage's system prompt; one that contradicts
        the decorator's would run under the declared prefix id with another text."""
        if returned.system is None:
            return
        if self.system_prompt is not None and returned.system != self.system_prompt:
            raise AirflowFailException(
                f"{self.custom_operator_name} task {self.task_id!r}: the function returned a "
                "system message that differs from system_prompt=; give the system prompt "
                "in one place"
            )
        self.system_prompt = returned.system


class FateEmbedDecoratedOperator(StageFunctionOperator, EmbeddingStageBase):
    """``@task.fate_embed``: one vector per text the function returns.

    Arguments: `EmbeddingOperator`'s except ``texts``, plus ``batch``.
    """

    custom_operator_name: str = "@task.fate_embed"

    def __init__(self, *, batch: int = 1, **kwargs: Any) -> None:
        super().__init__(batch=batch, text_tokens=[0] * max(batch, 0), **kwargs)

    def execute(self, context: Context) -> list[list[float]]:
        texts = self._returned(context, texts_from)
        self._check_batch(len(texts), "texts")
        return self._embed(context, texts)


class FateRerankDecoratedOperator(StageFunctionOperator, RerankStageBase):
    """``@task.fate_rerank``: the ``top_k`` best of the documents the function returns.

    Arguments: `RerankOperator`'s except ``documents``, plus ``batch`` (documents); with
    ``query=`` (templated) the function returns the documents, without it a
    ``(query, documents)`` tuple.
    """

    custom_operator_name: str = "@task.fate_rerank"
    template_fields: Sequence[str] = (*DecoratedOperator.template_fields, "query")

    def __init__(self, *, batch: int = 1, query: str | None = None, **kwargs: Any) -> None:
        context_tokens = kwargs.get("context_tokens", DEFAULT_CONTEXT_TOKENS)
        super().__init__(
            batch=batch,
            query_tokens=estimate_tokens(query) if query is not None else context_tokens,
            document_tokens=[0] * max(batch, 0),
            **kwargs,
        )
        self.query = query

    def execute(self, context: Context) -> list[str]:
        query, documents = self._returned(context, lambda v: rerank_from(v, self.query))
        self._check_batch(len(documents), "documents")
        return self._rerank(context, query, documents)


def fate_llm_task(
    python_callable: Callable[..., Any] | None = None, **kwargs: Any
) -> TaskDecorator:
    """``@task.fate_llm``: the function returns the prompt; the stage generates from it.

    Takes `LLMStageOperator`'s arguments except ``prompt``/``prompts`` (model,
    max_new_tokens, system_prompt, system_prefix_id, min_shards, max_shards, ...) and
    ``batch`` (prompts returned; default 1), plus any operator argument.
    """
    return task_decorator_factory(
        python_callable=python_callable,
        multiple_outputs=False,
        decorated_operator_class=FateLLMDecoratedOperator,
        **kwargs,
    )


def fate_embed_task(
    python_callable: Callable[..., Any] | None = None, **kwargs: Any
) -> TaskDecorator:
    """``@task.fate_embed``: the function returns the texts; the stage embeds them.

    Takes `EmbeddingOperator`'s arguments except ``texts``, and ``batch`` (texts
    returned; default 1).
    """
    return task_decorator_factory(
        python_callable=python_callable,
        multiple_outputs=False,
        decorated_operator_class=FateEmbedDecoratedOperator,
        **kwargs,
    )


def fate_rerank_task(
    python_callable: Callable[..., Any] | None = None, **kwargs: Any
) -> TaskDecorator:
    """``@task.fate_rerank``: the function returns the documents; the stage ranks them.

    Takes `RerankOperator`'s arguments except ``documents`` (``query`` is optional: without
    it the function returns ``(query, documents)``), and ``batch`` (documents returned;
    default 1).
    """
    return task_decorator_factory(
        python_callable=python_callable,
        multiple_outputs=False,
        decorated_operator_class=FateRerankDecoratedOperator,
        **kwargs,
    )
