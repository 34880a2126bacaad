"""Tree-of-thoughts breadth-first search with voting (Yao et al., NeurIPS'23).

Source: "Tree of Thoughts: Deliberate Problem Solving with Large Language Models" (Yao
et al., NeurIPS'23) and its ``src/tot/methods/bfs.py``: at each step every kept state is
expanded by one LLM call, then one vote call (``n_evaluate_sample`` votes) ranks all new
candidates and the best ``n_select_sample`` are kept. Here depth is 3 and breadth 5: each
level has 5 parallel expansions followed by one vote over the 5 candidates (5 votes,
as in the creative-writing task of ``tasks/text.py``); the next level expands the
states the vote kept.

Token counts used (cv in brackets):

- task: ~110 tokens (0.3);
- expand at level l: 220-token generation prompt (prefix) + task + the kept path so far
  (the thoughts of levels 1..l-1) -> ~250-token thought (0.35);
- vote at level l: 130-token vote prompt (prefix) + task + the 5 candidates (path +
  thought each) -> 5 votes of ~90 tokens (0.3).

Models: qwen2.5-14b expands, llama-3.1-70b votes (evaluation is the harder judgement).
"""

from __future__ import annotations

import numpy as np

from airflow_fate.domain.workload import PrefixSpec, StageSpec
from airflow_fate.workloads.model_names import LLAMA_70B, QWEN_14B
from airflow_fate.workloads.sampling import around
from airflow_fate.workloads.template import StageList, Template

NAME = "tree-of-thoughts"
GENERATE_PROMPT = PrefixSpec(id=f"{NAME}/generate-v1", tokens=220)
VOTE_PROMPT = PrefixSpec(id=f"{NAME}/vote-v1", tokens=130)
DEPTH = 3
BREADTH = 5
VOTES = 5


def build(rng: np.random.Generator) -> list[StageSpec]:
    """``DEPTH`` levels of ``BREADTH`` expansions, each level closed by one vote."""
    task = around(rng, 110, 0.3, lo=30)
    wf = StageList()
    path = 0
    vote: str | None = None
    for level in range(DEPTH):
        thoughts = []
        for b in range(BREADTH):
            out = around(rng, 250, 0.35)
            sid = wf.add(
                f"expand_{level}_{b}",
                QWEN_14B,
                GENERATE_PROMPT.tokens + task + path,
                out,
                parents=[vote] if vote else [],
                prefix=GENERATE_PROMPT,
            )
            thoughts.append((sid, out))
        votes = sum(around(rng, 90, 0.3) for _ in range(VOTES))
        vote = wf.add(
            f"vote_{level}",
            LLAMA_70B,
            VOTE_PROMPT.tokens + task + sum(path + t for _, t in thoughts),
            votes,
            parents=[s for s, _ in thoughts],
            prefix=VOTE_PROMPT,
        )
        path += round(sum(t for _, t in thoughts) / BREADTH)
    return wf.stages()


TEMPLATE = Template(NAME, build, frozenset({LLAMA_70B, QWEN_14B}))
