"""Operators for DAG authors: LLM generation, embedding and reranking stages.

Each operator describes its stage to the planner by filling ``executor_config["fate"]``
(`StageMetadata`: model, token estimates, shared prefix, shard bounds, output size) when
the DAG is parsed, and at run time executes the stage through the device runtime on the
devices the executor chose (`operators.placement`), pushing the outputs as its return
value and the measured breakdown as the ``fate_measured`` XCom.

Prompts, texts, queries and documents are Jinja templates, so upstream outputs come in
with ``{{ ti.xcom_pull(task_ids="retrieve") }}``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from pydantic import ValidationError

from airflow_fate.domain.workload import PrefixSpec
from airflow_fate.operators.arguments import (
    StageArgumentError,
    counts,
    for_task,
    number,
    templates,
    text,
    whole,
)
from airflow_fate.operators.metadata import FATE_KEY, StageMetadata, first_error
from airflow_fate.operators.stage import (
    MEASURED_XCOM_KEY,
    RETRYABLE,
    estimate_tokens,
    failure_report,
    measured,
    run_task,
)
from airflow_fate.runtime.errors import StageError
from airflow_fate.runtime.protocol import EmbedTask, GenerateTask, RerankTask, StageResult, Task

DEFAULT_CONTEXT_TOKENS = 64
"""Tokens assumed for templated upstream text when estimating a prompt's size."""

_ARGUMENT_OF_FIELD = {"output_tokens": "max_new_tokens", "prefix": "input_tokens"}
"""The argument behind a metadata field where the two differ: generated tokens come from
``max_new_tokens``, and a prefix longer than the input means ``input_tokens`` is short."""


class _FateStageOperator(BaseOperator):
    """Common part: stage metadata in ``executor_config``, run through the runtime."""

    ui_color = "#d9ecf2"

    def __init__(
        self,
        *,
        model: str,
        input_tokens: int,
        output_tokens: int,
        output_mb: float | None,
        prefix: PrefixSpec | None = None,
        min_shards: int | None = None,
        max_shards: int | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            metadata = StageMetadata(
                model=model,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                output_mb=output_mb if output_mb is not None else _default_output_mb(output_tokens),
                prefix=prefix,
                min_shards=min_shards,
                max_shards=max_shards,
            )
        except ValidationError as exc:
            loc, msg = first_error(exc)
            field = loc.split(".", 1)[0].split("[", 1)[0]
            argument = _ARGUMENT_OF_FIELD.get(field, field)
            raise StageArgumentError(argument, f"{loc}: {msg}" if loc else msg) from None
        config = dict(kwargs.pop("executor_config", None) or {})
        config[FATE_KEY] = metadata.as_executor_config()[FATE_KEY]
        super().__init__(executor_config=config, **kwargs)
        self.model = model
        self.metadata = metadata

    def _run(self, context: Context, task: Task) -> StageResult:
        ti = context["ti"]
        index = ti.map_index if ti.map_index is not None else -1
        mapped = f"[{index}]" if index >= 0 else ""
        key = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}{mapped}/try{ti.try_number}"
        try:
            result = run_task(
                key,
                self.model,
                task,
                self.metadata.input_tokens + self.metadata.output_tokens,
                os.environ,
                conf.get("fate", "models", fallback=None) or None,
            )
        except StageError as exc:
            text = f"stage {self.task_id} ({self.model}) failed [{exc.reason}]: {exc.message}"
            # The executor stores this try's XCom in fate_placement.measured: the monitor
            # shows why the try failed beside where it ran (the task log has ``text``).
            ti.xcom_push(key=MEASURED_XCOM_KEY, value=failure_report(exc, ti.try_number))
            if exc.reason in RETRYABLE:
                raise AirflowException(text) from None
            raise AirflowFailException(text) from None
        summary = measured(result, os.environ, ti.try_number)
        self.log.info(
            "stage %s on %s %s: load %.2f s (warm=%s), prefill %.2f s (prefix warm=%s), "
            "decode %.2f s",
            self.task_id,
            summary["node"] or "this process",
            ",".join(summary["devices"]),
            summary["load_s"],
            summary["model_warm"],
            summary["prefill_s"],
            summary["prefix_warm"],
            summary["decode_s"],
        )
        ti.xcom_push(key=MEASURED_XCOM_KEY, value=summary)
        return result


class LLMStageBase(_FateStageOperator):
    """A generation stage described by the parse-time size of each prompt.

    What `LLMStageOperator` (templated prompts) and ``@task.fate_llm`` (prompts returned
    by a function) share, so both give the planner the same metadata for the same
    arguments and run a batch the same way. Not for DAG authors: use either of those.

    Args:
        prompt_tokens: tokens known at parse time in each prompt of the batch (0 for a
            prompt only known at run time); ``context_tokens`` is added to each.
        Other arguments: as `LLMStageOperator`'s.
    """

    def __init__(
        self,
        *,
        model: str,
        prompt_tokens: Sequence[int],
        system_prompt: str | None = None,
        system_prefix_id: str | None = None,
        max_new_tokens: int = 32,
        input_tokens: int | None = None,
        context_tokens: int = DEFAULT_CONTEXT_TOKENS,
        output_mb: float | None = None,
        min_shards: int | None = None,
        max_shards: int | None = None,
        temperature: float = 0.0,
        **kwargs: Any,
    ) -> None:
        text("system_prompt", system_prompt, optional=True)
        text("system_prefix_id", system_prefix_id, optional=True, empty=False)
        if system_prefix_id is not None and not system_prompt:
            raise StageArgumentError("system_prefix_id", "system_prefix_id= needs system_prompt=")
        whole("max_new_tokens", max_new_tokens, 1)
        whole("input_tokens", input_tokens, 0, optional=True)
        whole("context_tokens", context_tokens, 0)
        number("output_mb", output_mb, 0.0, optional=True)
        number("temperature", temperature, 0.0)
        prompt_tokens = counts("prompt_tokens", prompt_tokens)
        system_tokens = estimate_tokens(system_prompt) if system_prompt else 0
        estimate = sum(system_tokens + tokens + context_tokens for tokens in prompt_tokens)
        prefix = (
            PrefixSpec(id=system_prefix_id, tokens=system_tokens)
            if system_prefix_id is not None
            else None
        )
        super().__init__(
            model=model,
            input_tokens=input_tokens if input_tokens is not None else estimate,
            output_tokens=max_new_tokens * len(prompt_tokens),
            output_mb=output_mb,
            prefix=prefix,
            min_shards=min_shards,
            max_shards=max_shards,
            **kwargs,
        )
        self.system_prompt = system_prompt
        self.system_prefix_id = system_prefix_id
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature

    def _generate(self, context: Context, prompts: Sequence[str]) -> list[str]:
        """Run the batch on the placed devices; one text per prompt."""
        task = GenerateTask(
            prompts=[str(p) for p in prompts],
            system=self.system_prompt,
            prefix_id=self.system_prefix_id,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
        )
        return self._run(context, task).texts or []


class LLMStageOperator(LLMStageBase):
    """Generate text with a causal LM for one prompt or a batch sharing a system prompt.

    Args:
        model: catalog model name.
        prompt: user prompt template (one prompt).
        prompts: user prompt templates (a batch); give this or ``prompt``.
        system_prompt: shared system prompt; its KV is reused when ``system_prefix_id``
            is set and a stage with the same model and id ran on the same device.
        system_prefix_id: stable id of ``system_prompt`` (e.g. ``"rag-system-v1"``).
        max_new_tokens: tokens to generate per prompt.
        input_tokens: estimate of the stage's prompt tokens (default: from the templates
            plus ``context_tokens`` per prompt for templated upstream text).
        context_tokens: tokens assumed per prompt for rendered upstream outputs.
        output_mb: estimate of the output size handed to children.
        min_shards / max_shards: bounds on the GPUs the stage may span.
        temperature: 0 for greedy decoding.
    """

    template_fields: Sequence[str] = ("prompt", "prompts", "system_prompt")

    def __init__(
        self,
        *,
        model: str,
        prompt: str | None = None,
        prompts: list[str] | None = None,
        system_prompt: str | None = None,
        system_prefix_id: str | None = None,
        max_new_tokens: int = 32,
        input_tokens: int | None = None,
        context_tokens: int = DEFAULT_CONTEXT_TOKENS,
        output_mb: float | None = None,
        min_shards: int | None = None,
        max_shards: int | None = None,
        temperature: float = 0.0,
        **kwargs: Any,
    ) -> None:
        with for_task(kwargs.get("task_id")):
            if (prompt is None) == (prompts is None):
                raise StageArgumentError("prompt", "give exactly one of prompt= or prompts=")
            if prompt is not None:
                batch = [text("prompt", prompt) or ""]
            elif isinstance(prompts, str):
                reason = "prompts= must be a list of strings (one prompt goes in prompt=)"
                raise StageArgumentError("prompts", reason)
            else:
                batch = templates("prompts", prompts)
            if not batch:
                raise StageArgumentError("prompts", "prompts= must not be empty")
            super().__init__(
                model=model,
                prompt_tokens=[estimate_tokens(p) for p in batch],
                system_prompt=system_prompt,
                system_prefix_id=system_prefix_id,
                max_new_tokens=max_new_tokens,
                input_tokens=input_tokens,
                context_tokens=context_tokens,
                output_mb=output_mb,
                min_shards=min_shards,
                max_shards=max_shards,
                temperature=temperature,
                **kwargs,
            )
        self.prompt = prompt
        self.prompts = prompts

    def execute(self, context: Context) -> str | list[str]:
        batch = [self.prompt] if self.prompt is not None else list(self.prompts or [])
        texts = self._generate(context, batch)
        return texts[0] if self.prompt is not None and texts else texts


class EmbeddingStageBase(_FateStageOperator):
    """An embedding stage described by the parse-time size of each text.

    Shared by `EmbeddingOperator` and ``@task.fate_embed`` (see `LLMStageBase`).

    Args:
        text_tokens: tokens known at parse time in each text (0 for a text only known at
            run time); ``context_tokens`` is added to each.
        Other arguments: as `EmbeddingOperator`'s.
    """

    def __init__(
        self,
        *,
        model: str,
        text_tokens: Sequence[int],
        input_tokens: int | None = None,
        context_tokens: int = DEFAULT_CONTEXT_TOKENS,
        output_mb: float | None = None,
        decimals: int = 5,
        **kwargs: Any,
    ) -> None:
        whole("input_tokens", input_tokens, 0, optional=True)
        whole("context_tokens", context_tokens, 0)
        number("output_mb", output_mb, 0.0, optional=True)
        whole("decimals", decimals, 0)
        text_tokens = counts("text_tokens", text_tokens)
        estimate = sum(tokens + context_tokens for tokens in text_tokens) or 1
        super().__init__(
            model=model,
            input_tokens=input_tokens if input_tokens is not None else estimate,
            output_tokens=0,
            output_mb=output_mb if output_mb is not None else 0.002 * len(text_tokens),
            **kwargs,
        )
        self.decimals = decimals

    def _embed(self, context: Context, texts: list[str]) -> list[list[float]]:
        """Run the embedding on the placed devices; one rounded vector per text."""
        if not texts:
            raise AirflowFailException(f"stage {self.task_id}: no text to embed")
        vectors = self._run(context, EmbedTask(texts=texts)).embeddings or []
        return [[round(x, self.decimals) for x in v] for v in vectors]


class EmbeddingOperator(EmbeddingStageBase):
    """Embed texts (mean-pooled, L2-normalised); returns one vector per text.

    Args:
        model: catalog model name of an encoder.
        texts: text templates, or one template whose rendering is split into lines.
        input_tokens: estimate of all texts' tokens (default: from the templates).
        decimals: vectors are rounded to this many decimals to keep XComs small.
    """

    template_fields: Sequence[str] = ("texts",)

    def __init__(
        self,
        *,
        model: str,
        texts: list[str] | str,
        input_tokens: int | None = None,
        context_tokens: int = DEFAULT_CONTEXT_TOKENS,
        output_mb: float | None = None,
        decimals: int = 5,
        **kwargs: Any,
    ) -> None:
        with for_task(kwargs.get("task_id")):
            items = templates("texts", texts)
            super().__init__(
                model=model,
                text_tokens=[estimate_tokens(t) for t in items],
                input_tokens=input_tokens,
                context_tokens=context_tokens,
                output_mb=output_mb,
                decimals=decimals,
                **kwargs,
            )
        self.texts = texts

    def execute(self, context: Context) -> list[list[float]]:
        return self._embed(context, _lines(self.texts))


class RerankStageBase(_FateStageOperator):
    """A rerank stage described by the parse-time size of its query and documents.

    Shared by `RerankOperator` and ``@task.fate_rerank`` (see `LLMStageBase`).

    Args:
        query_tokens: tokens of the query (an estimate when it is known only at run time).
        document_tokens: tokens known at parse time in each document (0 for a document
            only known at run time); ``context_tokens`` is added to each.
        Other arguments: as `RerankOperator`'s.
    """

    def __init__(
        self,
        *,
        model: str,
        query_tokens: int,
        document_tokens: Sequence[int],
        top_k: int = 3,
        input_tokens: int | None = None,
        context_tokens: int = DEFAULT_CONTEXT_TOKENS,
        output_mb: float | None = None,
        **kwargs: Any,
    ) -> None:
        whole("top_k", top_k, 1)
        whole("input_tokens", input_tokens, 0, optional=True)
        whole("context_tokens", context_tokens, 0)
        number("output_mb", output_mb, 0.0, optional=True)
        query_tokens = whole("query_tokens", query_tokens, 0) or 0
        document_tokens = counts("document_tokens", document_tokens)
        estimate = query_tokens + sum(tokens + context_tokens for tokens in document_tokens)
        super().__init__(
            model=model,
            input_tokens=input_tokens if input_tokens is not None else estimate,
            output_tokens=0,
            output_mb=output_mb,
            **kwargs,
        )
        self.top_k = top_k

    def _rerank(self, context: Context, query: str, documents: list[str]) -> list[str]:
        """Score on the placed devices; the ``top_k`` best documents, best first (their
        scores go to the ``scores`` XCom)."""
        if not documents:
            raise AirflowFailException(f"stage {self.task_id}: no documents to rerank")
        result = self._run(context, RerankTask(query=query, documents=documents))
        scores = result.scores or []
        ranked = sorted(zip(scores, documents, strict=True), key=lambda p: -p[0])
        context["ti"].xcom_push(key="scores", value=[round(s, 5) for s, _ in ranked])
        return [doc for _, doc in ranked[: self.top_k]]


class RerankOperator(RerankStageBase):
    """Score documents against a query; returns the ``top_k`` best documents, best first.

    Args:
        model: catalog model name (a bi-encoder scores by cosine, a cross-encoder by logit).
        query: query template.
        documents: document templates, or one template whose rendering is split into lines.
        top_k: how many documents to return.
    """

    template_fields: Sequence[str] = ("query", "documents")

    def __init__(
        self,
        *,
        model: str,
        query: str,
        documents: list[str] | str,
        top_k: int = 3,
        input_tokens: int | None = None,
        context_tokens: int = DEFAULT_CONTEXT_TOKENS,
        output_mb: float | None = None,
        **kwargs: Any,
    ) -> None:
        with for_task(kwargs.get("task_id")):
            items = templates("documents", documents)
            super().__init__(
                model=model,
                query_tokens=estimate_tokens(text("query", query) or ""),
                document_tokens=[estimate_tokens(d) for d in items],
                top_k=top_k,
                input_tokens=input_tokens,
                context_tokens=context_tokens,
                output_mb=output_mb,
                **kwargs,
            )
        self.query = query
        self.documents = documents

    def execute(self, context: Context) -> list[str]:
        return self._rerank(context, str(self.query), _lines(self.documents))


def _lines(value: list[str] | str | Any) -> list[str]:
    """Rendered template(s) as a list of non-empty texts (a string splits on lines)."""
    if isinstance(value, str):
        items = value.splitlines()
    elif isinstance(value, list | tuple):
        items = [
            line for v in value for line in (v.splitlines() if isinstance(v, str) else [str(v)])
        ]
    else:
        items = [str(value)]
    return [i.strip() for i in items if i.strip()]


def _default_output_mb(output_tokens: int) -> float:
    """About four bytes a generated token, at least a kilobyte."""
    return max(output_tokens * 4 / 1e6, 0.001)
