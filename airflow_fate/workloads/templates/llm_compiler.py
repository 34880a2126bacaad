"""LLMCompiler: plan, run tool calls in parallel, join (Kim et al., ICML'24).

Source: "An LLM Compiler for Parallel Function Calling" (Kim et al., ICML'24) and its
ParallelQA configuration (``configs/parallelqa/gpt_prompts.py``): a planner LLM emits a
DAG of ``search(entity)`` calls each followed by a ``math(question, [$i])`` call, the task
fetching unit runs independent calls in parallel, and a joiner LLM reads every
observation and answers. ``math`` is an LLM call (``LLMMathChain``); ``search`` here is a
local dense-retrieval tool (bge-large) standing in for the Wikipedia API, returning one
~250-token article extract as in the prompt's examples.

Token counts used (cv in brackets):

- question: ~45 tokens (0.4); entities: 2-4;
- planner: 1,150-token prompt (prefix: tool descriptions + the few-shot plans, about
  3.5k characters of examples) + question -> ~30 tokens per planned call + 20;
- search_i: ~12-token query (0.3) -> an observation of ~250 tokens (0.3);
- math_i: 260-token math-chain prompt (prefix) + ~30-token sub-question + observation
  -> ~50 tokens (0.4); in half the instances a final math call combines the results;
- joiner: 2,700-token prompt (prefix: the ~11k-character ``OUTPUT_PROMPT`` with its
  worked examples) + question + plan + observations + math results -> ~60 tokens (0.4).

Models: llama-3.1-70b plans and joins (LLMCompiler evaluated LLaMA-2-70B), llama-3.1-8b
runs the math tool, bge-large-en-v1.5 the search tool.
"""

from __future__ import annotations

import numpy as np

from airflow_fate.domain.workload import PrefixSpec, StageSpec
from airflow_fate.workloads.model_names import BGE_EMBED, LLAMA_8B, LLAMA_70B
from airflow_fate.workloads.sampling import around, count, text_mb
from airflow_fate.workloads.template import StageList, Template

NAME = "llm-compiler"
PLANNER_PROMPT = PrefixSpec(id=f"{NAME}/planner-v1", tokens=1150)
MATH_PROMPT = PrefixSpec(id=f"{NAME}/math-chain-v1", tokens=260)
JOINER_PROMPT = PrefixSpec(id=f"{NAME}/joiner-v1", tokens=2700)


def build(rng: np.random.Generator) -> list[StageSpec]:
    """planner -> (search_i -> math_i) for each entity -> [combine] -> join."""
    question = around(rng, 45, 0.4, lo=10)
    entities = count(rng, 2, 4)
    combine = bool(rng.random() < 0.5)
    calls = 2 * entities + int(combine)
    wf = StageList()
    plan_out = around(rng, 30 * calls + 20, 0.2)
    plan = wf.add(
        "plan", LLAMA_70B, PLANNER_PROMPT.tokens + question, plan_out, prefix=PLANNER_PROMPT
    )
    results: list[str] = []
    observed = 0
    for e in range(entities):
        observation = around(rng, 250, 0.3)
        search = wf.add(
            f"search_{e}",
            BGE_EMBED,
            around(rng, 12, 0.3, lo=3),
            0,
            parents=[plan],
            output_mb=text_mb(observation),
        )
        out = around(rng, 50, 0.4)
        results.append(
            wf.add(
                f"math_{e}",
                LLAMA_8B,
                MATH_PROMPT.tokens + around(rng, 30, 0.3) + observation,
                out,
                parents=[search],
                prefix=MATH_PROMPT,
            )
        )
        observed += observation + out
    if combine:
        out = around(rng, 40, 0.4)
        results.append(
            wf.add(
                "math_combine",
                LLAMA_8B,
                MATH_PROMPT.tokens + 30 + 10 * entities,
                out,
                parents=list(results),
                prefix=MATH_PROMPT,
            )
        )
        observed += out
    wf.add(
        "join",
        LLAMA_70B,
        JOINER_PROMPT.tokens + question + plan_out + observed,
        around(rng, 60, 0.4),
        parents=results,
        prefix=JOINER_PROMPT,
    )
    return wf.stages()


TEMPLATE = Template(NAME, build, frozenset({BGE_EMBED, LLAMA_8B, LLAMA_70B}))
