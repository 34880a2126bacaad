"""Retrieval-augmented answering with query rewrite, rerank and an LLM judge.

Sources: rewrite-retrieve-read (Ma et al., "Query Rewriting for Retrieval-Augmented
Large Language Models", EMNLP'23) puts a small LLM before retrieval to rewrite the
question; DPR (Karpukhin et al., EMNLP'20) fixes passages at 100 words (~130 tokens);
BGE (Xiao et al., C-Pack, 2023) provides the bi-encoder and the cross-encoder reranker;
the judge grades faithfulness and relevance as in LLM-as-a-judge (Zheng et al.,
NeurIPS'23) and RAGAS-style evaluation.

Token counts used (cv in brackets):

- question: ~40 tokens (0.5, 8-200);
- rewrite: 420-token few-shot rewrite prompt (prefix) + question -> ~48 tokens (0.4);
- embed (retrieval): the rewritten query; 3 query vectors out;
- rerank: 50 retrieved passages, each scored with the query: 50 x (question + 130);
  the top 10 passages (~1,300 tokens) go on;
- answer: 520-token system prompt (prefix) + question + top-10 passages (~1,300, 0.15)
  -> ~260 tokens (0.4);
- judge: 640-token rubric (prefix) + question + passages + answer -> ~160 tokens (0.3).

Models: llama-3.1-8b rewrites, bge-large-en-v1.5 embeds, bge-reranker-large reranks,
qwen2.5-14b (60%) or llama-3.1-8b (40%) answers, llama-3.1-70b judges.
"""

from __future__ import annotations

import numpy as np

from airflow_fate.domain.workload import PrefixSpec, StageSpec
from airflow_fate.workloads.model_names import BGE_EMBED, BGE_RERANK, LLAMA_8B, LLAMA_70B, QWEN_14B
from airflow_fate.workloads.sampling import around, embeddings_mb, pick, text_mb
from airflow_fate.workloads.template import StageList, Template

NAME = "rag-judge"
REWRITE_PROMPT = PrefixSpec(id=f"{NAME}/rewrite-fewshot-v1", tokens=420)
ANSWER_PROMPT = PrefixSpec(id=f"{NAME}/answer-system-v1", tokens=520)
JUDGE_PROMPT = PrefixSpec(id=f"{NAME}/judge-rubric-v1", tokens=640)
CANDIDATES = 50
PASSAGE_TOKENS = 130
TOP_K = 10


def build(rng: np.random.Generator) -> list[StageSpec]:
    """rewrite -> embed -> rerank -> answer -> judge."""
    question = around(rng, 40, 0.5, lo=8, hi=200)
    wf = StageList()
    rewritten = around(rng, 48, 0.4, lo=8)
    rewrite = wf.add(
        "rewrite", LLAMA_8B, REWRITE_PROMPT.tokens + question, rewritten, prefix=REWRITE_PROMPT
    )
    embed = wf.add(
        "embed_query", BGE_EMBED, rewritten, 0, parents=[rewrite], output_mb=embeddings_mb(3)
    )
    context = around(rng, TOP_K * PASSAGE_TOKENS, 0.15)
    rerank = wf.add(
        "rerank",
        BGE_RERANK,
        CANDIDATES * (question + around(rng, PASSAGE_TOKENS, 0.1)),
        0,
        parents=[embed],
        output_mb=text_mb(context),
    )
    answer_out = around(rng, 260, 0.4)
    answer = wf.add(
        "answer",
        pick(rng, (QWEN_14B, LLAMA_8B), (0.6, 0.4)),
        ANSWER_PROMPT.tokens + question + context,
        answer_out,
        parents=[rerank],
        prefix=ANSWER_PROMPT,
    )
    wf.add(
        "judge",
        LLAMA_70B,
        JUDGE_PROMPT.tokens + question + context + answer_out,
        around(rng, 160, 0.3),
        parents=[answer],
        prefix=JUDGE_PROMPT,
    )
    return wf.stages()


TEMPLATE = Template(NAME, build, frozenset({LLAMA_8B, LLAMA_70B, QWEN_14B, BGE_EMBED, BGE_RERANK}))
