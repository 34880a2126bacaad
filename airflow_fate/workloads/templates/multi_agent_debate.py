"""Multi-agent debate: 3 agents x 2 rounds, then a judge (Du et al., ICML'24).

Source: "Improving Factuality and Reasoning in Language Models through Multiagent
Debate" (Du et al., ICML'24); its released ``gsm/gen_gsm.py`` runs ``agents = 3`` and
``rounds = 2``: every agent answers a GSM8K problem, then each sees the other two
answers and the question again and answers anew. Mixing models across agents follows
ReConcile (Chen et al., ACL'24), which debates between different LLMs. A judge model
reads the final answers and decides, as in the issue's application description.

Token counts used (cv in brackets):

- problem: ~85 tokens (0.35), a GSM8K word problem;
- round 1: 120-token agent system prompt (prefix) + 35-token instruction + problem
  -> ~220 tokens of reasoning (0.4);
- round 2: the agent's round-1 prompt and answer + the two other answers + 60 tokens of
  framing + the problem again -> ~200 tokens (0.4);
- judge: 200-token judging prompt (prefix) + problem + the three round-2 answers
  -> ~120 tokens (0.4).

Models: agents llama-3.1-8b, qwen2.5-14b, llama-3.1-8b; judge llama-3.1-70b.
"""

from __future__ import annotations

import numpy as np

from airflow_fate.domain.workload import PrefixSpec, StageSpec
from airflow_fate.workloads.model_names import LLAMA_8B, LLAMA_70B, QWEN_14B
from airflow_fate.workloads.sampling import around
from airflow_fate.workloads.template import StageList, Template

NAME = "multi-agent-debate"
AGENT_PROMPT = PrefixSpec(id=f"{NAME}/agent-system-v1", tokens=120)
JUDGE_PROMPT = PrefixSpec(id=f"{NAME}/judge-v1", tokens=200)
AGENT_MODELS = (LLAMA_8B, QWEN_14B, LLAMA_8B)
INSTRUCTION = 35
FRAMING = 60


def build(rng: np.random.Generator) -> list[StageSpec]:
    """Round 1 in parallel, round 2 after all of round 1, judge after all of round 2."""
    problem = around(rng, 85, 0.35, lo=20)
    wf = StageList()
    first_in = AGENT_PROMPT.tokens + INSTRUCTION + problem
    first = []
    for a, model in enumerate(AGENT_MODELS):
        out = around(rng, 220, 0.4)
        first.append((wf.add(f"r1_agent{a}", model, first_in, out, prefix=AGENT_PROMPT), out))
    total = sum(t for _, t in first)
    second = []
    for a, model in enumerate(AGENT_MODELS):
        # own round-1 turn, plus the others' answers (total includes its own once)
        tokens = first_in + total + FRAMING + problem
        out = around(rng, 200, 0.4)
        sid = wf.add(
            f"r2_agent{a}",
            model,
            tokens,
            out,
            parents=[s for s, _ in first],
            prefix=AGENT_PROMPT,
        )
        second.append((sid, out))
    wf.add(
        "judge",
        LLAMA_70B,
        JUDGE_PROMPT.tokens + problem + sum(t for _, t in second),
        around(rng, 120, 0.4),
        parents=[s for s, _ in second],
        prefix=JUDGE_PROMPT,
    )
    return wf.stages()


TEMPLATE = Template(NAME, build, frozenset({LLAMA_8B, LLAMA_70B, QWEN_14B}))
