"""MetaGPT-style software development (Hong et al., ICLR'24).

Source: MetaGPT runs a standard operating procedure of roles: an architect turns the
requirement into a system design and file list, engineers write the files, reviewers
review each file and engineers revise it. The per-role prompt sizes come from MetaGPT's
published run logs: architect 182 tokens in -> 706 out; coders ~2,991 in; reviewers
~3,717 in; revisers ~4,175 in. The review prompt is the coding prompt plus the code, and
the revise prompt is the review prompt plus the review, so the logs also give the
outputs: code ~726 tokens (3,717 - 2,991) and review ~458 tokens (4,175 - 3,717); a
revised file is drawn like a fresh one (~726).

Token counts used (cv in brackets):

- architect: 182 in (0.15) -> 706 out (0.2), with a 96-token role prompt as prefix;
- per file (3-6 files, in parallel): code 2,991 in (0.15) -> 726 (0.3); review
  in = code in + code out -> 458 (0.3); revise in = review in + review out -> 726 (0.3);
- role prompts shared across projects (prefixes): engineer 520, reviewer 640,
  reviser 560 tokens (our estimate of the fixed instruction part of MetaGPT's
  ``WriteCode`` and ``WriteCodeReview`` action templates).

Models: llama-3.1-70b for the architect and the reviewers (judgement roles),
qwen2.5-14b for coding and revising (the same model, so a reviser can follow its coder).
"""

from __future__ import annotations

import numpy as np

from airflow_fate.domain.workload import PrefixSpec, StageSpec
from airflow_fate.workloads.model_names import LLAMA_70B, QWEN_14B
from airflow_fate.workloads.sampling import around, count
from airflow_fate.workloads.template import StageList, Template

NAME = "metagpt-coding"
ARCHITECT_PROMPT = PrefixSpec(id=f"{NAME}/architect-v1", tokens=96)
ENGINEER_PROMPT = PrefixSpec(id=f"{NAME}/engineer-v1", tokens=520)
REVIEWER_PROMPT = PrefixSpec(id=f"{NAME}/reviewer-v1", tokens=640)
REVISER_PROMPT = PrefixSpec(id=f"{NAME}/reviser-v1", tokens=560)


def build(rng: np.random.Generator) -> list[StageSpec]:
    """Architect, then code -> review -> revise chains for each file in parallel."""
    wf = StageList()
    design = wf.add(
        "architect",
        LLAMA_70B,
        around(rng, 182, 0.15, lo=ARCHITECT_PROMPT.tokens + 20),
        around(rng, 706, 0.2),
        prefix=ARCHITECT_PROMPT,
    )
    for f in range(count(rng, 3, 6)):
        code_in = around(rng, 2991, 0.15, lo=ENGINEER_PROMPT.tokens + 800)
        code_out = around(rng, 726, 0.3)
        code = wf.add(
            f"code_{f}", QWEN_14B, code_in, code_out, parents=[design], prefix=ENGINEER_PROMPT
        )
        review_in = code_in + code_out
        review_out = around(rng, 458, 0.3)
        review = wf.add(
            f"review_{f}", LLAMA_70B, review_in, review_out, parents=[code], prefix=REVIEWER_PROMPT
        )
        wf.add(
            f"revise_{f}",
            QWEN_14B,
            review_in + review_out,
            around(rng, 726, 0.3),
            parents=[review],
            prefix=REVISER_PROMPT,
        )
    return wf.stages()


TEMPLATE = Template(NAME, build, frozenset({LLAMA_70B, QWEN_14B}))
