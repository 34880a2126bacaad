"""Deterministic prompt text for workload stages, which carry token counts but no text.

A workload (``workload.json``) says how many tokens a stage reads and writes and which
shared prefix it has; replaying it for real needs text of about that size. Here:

- a prefix id becomes a system prompt of about ``prefix.tokens`` tokens, the same text
  for every stage that names it (so its KV can be reused across stages);
- the rest of ``input_tokens`` is the stage's own text: its name, the text its parents
  produced (so outputs really flow along the DAG), and filler;
- a causal-LM stage decodes exactly ``output_tokens`` (``ignore_eos``), as benchmark
  harnesses do, so measured and declared work agree;
- an embedding-model stage without parents embeds passages (indexing); with parents it
  reranks passages against its parents' text (retrieval); a cross-encoder always reranks.

Text is built from common English words that are one token in the usual BPE and
WordPiece vocabularies, so word counts approximate token counts; the worker reports the
exact counts it saw.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence

from airflow_fate.domain.graph import StageInfo
from airflow_fate.runtime.protocol import (
    EmbedTask,
    GenerateTask,
    ModelSource,
    RerankTask,
    StageRequest,
    StageResult,
    Task,
)

_VOCABULARY = (
    "the of and to in is for on that with as was by at from are this be or an it which "
    "not have has but all were can they their one more also its new other been when we "
    "there time would first used may after two into some these only over such most where "
    "out many years each well then than use made three while up so them during under both "
    "people part work system water day world state year long high small large data model "
    "group life case point number place order value line plan area set end form side city "
    "power house report game team book field result change level market price test cost "
    "table light river road paper music story money class design policy node task stage "
    "graph queue cache memory speed energy signal image sound color wind"
)
WORDS = tuple(_VOCABULARY.split())

PASSAGE_WORDS = 32
"""Words per passage of an embedding/rerank stage (short, as retrieval chunks are)."""

TEMPLATE_OVERHEAD = 12
"""Tokens a chat template adds around a system and a user turn (role tags, markers)."""


def filler(seed: str, n: int) -> str:
    """``n`` words drawn deterministically from ``seed``."""
    rng = random.Random(zlib.crc32(seed.encode("utf-8")))
    return " ".join(rng.choice(WORDS) for _ in range(max(n, 0)))


def system_prompt(prefix_id: str, tokens: int) -> str:
    """The shared system prompt of ``prefix_id``, about ``tokens`` tokens long."""
    head = f"You are the assistant for {prefix_id}. Follow these notes:"
    return f"{head} {filler('prefix:' + prefix_id, tokens - len(head.split()) - 4)}"


def stage_request(
    stage: StageInfo, source: ModelSource, parent_texts: Sequence[str] = ()
) -> StageRequest:
    """The runtime request that replays ``stage`` on ``source`` with its parents' outputs."""
    name = f"{stage.workflow_id}/{stage.stage_id}"
    context = " ".join(" ".join(t.split()) for t in parent_texts)
    task: Task
    if source.kind == "causal-lm":
        own = max(stage.input_tokens - stage.prefix_tokens - TEMPLATE_OVERHEAD, 8)
        task = GenerateTask(
            prompts=[_user_text(name, context, own)],
            system=system_prompt(stage.prefix_id, stage.prefix_tokens) if stage.prefix_id else None,
            prefix_id=stage.prefix_id,
            max_new_tokens=max(stage.output_tokens, 1),
            ignore_eos=True,
        )
    else:
        passages = _passages(name, stage.input_tokens)
        if source.kind == "embedding" and not parent_texts:
            task = EmbedTask(texts=passages)
        else:
            query = " ".join((context or filler(name + ":query", 12)).split()[:PASSAGE_WORDS])
            task = RerankTask(query=query, documents=passages)
    return StageRequest(model=source, task=task, kv_tokens=stage.tokens)


def output_text(request: StageRequest, result: StageResult, top: int = 2) -> str:
    """The text a stage hands its children: generations, or the best-ranked passages."""
    task = request.task
    if result.texts is not None:
        return "\n".join(result.texts)
    if isinstance(task, RerankTask) and result.scores is not None:
        ranked = sorted(zip(result.scores, task.documents, strict=True), reverse=True)
        return "\n".join(doc for _, doc in ranked[:top])
    if isinstance(task, EmbedTask):
        return task.texts[0]
    return ""


def _user_text(name: str, context: str, words: int) -> str:
    head = f"Task {name}."
    if context:
        budget = max(words // 2, 1)
        head += " Context: " + " ".join(context.split()[:budget]) + "."
    return f"{head} {filler('stage:' + name, words - len(head.split()))}"


def _passages(name: str, tokens: int) -> list[str]:
    count = max(1, round(tokens / (PASSAGE_WORDS + 2)))
    return [filler(f"passage:{name}:{i}", PASSAGE_WORDS) for i in range(count)]
