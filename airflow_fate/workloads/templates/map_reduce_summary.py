"""Map-reduce summarisation of a long document (LangChain ``map_reduce``; Parrot, OSDI'24).

Source: LangChain's summarisation tutorial splits a document with
``CharacterTextSplitter.from_tiktoken_encoder(chunk_size=1000)``, summarises the chunks in
parallel (map) and folds the summaries into one (reduce); ``ReduceDocumentsChain`` first
collapses groups of summaries whenever together they exceed ``token_max=3000`` tokens.
Parrot (Lin et al., OSDI'24, section 8) serves the same map-reduce application over
arXiv papers.

Token counts used:

- document: 6-16 chunks of ~1,000 tokens (cv 0.1), i.e. a 6k-16k-token paper;
- map: a 48-token instruction (shared prefix) + chunk -> ~250-token summary (cv 0.35);
- collapse, only when the summaries exceed 3,000 tokens: greedy groups of at most
  3,000 summary tokens + the 64-token combine prompt -> ~400 tokens (cv 0.3);
- reduce: combine prompt + all (collapsed) summaries -> ~500 tokens (cv 0.3).

Models: maps and collapses on llama-3.1-8b (many cheap parallel workers); the reduce,
which reconciles the whole document, on qwen2.5-14b.
"""

from __future__ import annotations

import numpy as np

from airflow_fate.domain.workload import PrefixSpec, StageSpec
from airflow_fate.workloads.model_names import LLAMA_8B, QWEN_14B
from airflow_fate.workloads.sampling import around, count
from airflow_fate.workloads.template import StageList, Template

NAME = "map-reduce-summary"
MAP_PROMPT = PrefixSpec(id=f"{NAME}/map-prompt-v1", tokens=48)
COMBINE_PROMPT = PrefixSpec(id=f"{NAME}/combine-prompt-v1", tokens=64)
TOKEN_MAX = 3000


def build(rng: np.random.Generator) -> list[StageSpec]:
    """One document: parallel maps, collapses while summaries exceed ``TOKEN_MAX``, reduce."""
    wf = StageList()
    summaries: list[tuple[str, int]] = []
    for i in range(count(rng, 6, 16)):
        chunk = around(rng, 1000, 0.1, hi=1100)
        out = around(rng, 250, 0.35, hi=700)
        sid = wf.add(f"map_{i}", LLAMA_8B, MAP_PROMPT.tokens + chunk, out, prefix=MAP_PROMPT)
        summaries.append((sid, out))
    if sum(t for _, t in summaries) > TOKEN_MAX:
        summaries = _collapse(rng, wf, summaries)
    wf.add(
        "reduce",
        QWEN_14B,
        COMBINE_PROMPT.tokens + sum(t for _, t in summaries),
        around(rng, 500, 0.3),
        parents=[s for s, _ in summaries],
        prefix=COMBINE_PROMPT,
    )
    return wf.stages()


def _collapse(
    rng: np.random.Generator, wf: StageList, summaries: list[tuple[str, int]]
) -> list[tuple[str, int]]:
    """One collapse per greedy group of at most ``TOKEN_MAX`` summary tokens."""
    groups: list[list[tuple[str, int]]] = [[]]
    for item in summaries:
        if groups[-1] and sum(t for _, t in groups[-1]) + item[1] > TOKEN_MAX:
            groups.append([])
        groups[-1].append(item)
    out: list[tuple[str, int]] = []
    for g, group in enumerate(groups):
        tokens = around(rng, 400, 0.3)
        sid = wf.add(
            f"collapse_{g}",
            LLAMA_8B,
            COMBINE_PROMPT.tokens + sum(t for _, t in group),
            tokens,
            parents=[s for s, _ in group],
            prefix=COMBINE_PROMPT,
        )
        out.append((sid, tokens))
    return out


TEMPLATE = Template(NAME, build, frozenset({LLAMA_8B, QWEN_14B}))
