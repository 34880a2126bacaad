"""The controlled shape of the ``prefix-reuse`` suite: k answers over a shared context, a join.

Not a published application: a controlled experiment. Each workflow asks k questions
(2-8) about one shared context (a long system prompt, a document, a few-shot block),
answers them in parallel and joins the answers. A fraction ``F`` of every stage's input
is a shared prefix; ``P`` distinct contexts exist, and each workflow draws one. Reuse is
not the only lever: the width k, the answer model (llama-3.1-8b 50%, qwen2.5-14b 35%,
llama-3.1-70b 15%) and the join model (llama-3.1-70b or qwen2.5-14b) vary per
workflow, so residency, locality and fragmentation still matter.

Token counts (cv in brackets): answer input ~3,000 tokens, output ~300 (0.4); join
input ~2,000, output ~400 (0.3). With role mean input T, the prefix is
``round(F * T)`` tokens (the same length for every use of one prefix id, as prompt KV
reuse requires) and the rest is ``round((1 - F) * T * v)`` with ``v`` log-normal of
mean 1 (cv 0.3). Hence the expected input is T for every F, the aggregate prefix share
of input tokens is F, and every draw is made whatever F and P are: for one seed, a
sweep over F and P changes only the prefix annotations and which context a stage
shares, not the DAGs, models or arrivals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from airflow_fate.domain.workload import PrefixSpec, StageSpec
from airflow_fate.workloads.model_names import LLAMA_8B, LLAMA_70B, QWEN_14B
from airflow_fate.workloads.sampling import around, count, factor, pick
from airflow_fate.workloads.template import StageList, Template

NAME = "shared-context-fanout"
ANSWER_MODELS = ((LLAMA_8B, 0.5), (QWEN_14B, 0.35), (LLAMA_70B, 0.15))
JOIN_MODELS = ((LLAMA_70B, 0.5), (QWEN_14B, 0.5))
ANSWER_INPUT = 3000
JOIN_INPUT = 2000
SUFFIX_CV = 0.3


@dataclass(frozen=True)
class SharedContextFanout:
    """Builder of one instance for a prefix fraction and a number of distinct prefixes.

    A frozen dataclass rather than a closure so equal settings compare equal (the load
    calibration caches on it).

    Attributes:
        fraction: share F of each stage's input that is the shared prefix, in [0, 1).
        prefixes: number P of distinct shared contexts, at least 1.
    """

    fraction: float
    prefixes: int

    def __call__(self, rng: np.random.Generator) -> list[StageSpec]:
        width = count(rng, 2, 8)
        answer_model = pick(rng, [m for m, _ in ANSWER_MODELS], [w for _, w in ANSWER_MODELS])
        join_model = pick(rng, [m for m, _ in JOIN_MODELS], [w for _, w in JOIN_MODELS])
        # one uniform draw whatever P is (integers() may reject and redraw)
        context = min(int(rng.random() * self.prefixes), self.prefixes - 1)
        wf = StageList()
        answers = []
        for i in range(width):
            prefix, tokens = self._input(rng, context, "answer", ANSWER_INPUT)
            answers.append(
                wf.add(f"answer_{i}", answer_model, tokens, around(rng, 300, 0.4), prefix=prefix)
            )
        prefix, tokens = self._input(rng, context, "join", JOIN_INPUT)
        wf.add("join", join_model, tokens, around(rng, 400, 0.3), parents=answers, prefix=prefix)
        return wf.stages()

    def _input(
        self, rng: np.random.Generator, context: int, role: str, mean: int
    ) -> tuple[PrefixSpec | None, int]:
        """(prefix, input tokens) of one stage; the suffix draw happens for every F."""
        v = min(factor(rng, SUFFIX_CV), 4.0)
        suffix = max(1, round((1 - self.fraction) * mean * v))
        shared = round(self.fraction * mean)
        if shared == 0:
            return None, suffix
        prefix = PrefixSpec(id=f"prefix-reuse/ctx{context:03d}/{role}", tokens=shared)
        return prefix, shared + suffix


def template(fraction: float, prefixes: int) -> Template:
    """The suite's template for prefix fraction ``fraction`` and ``prefixes`` contexts."""
    return Template(
        NAME,
        SharedContextFanout(fraction, prefixes),
        frozenset({LLAMA_8B, LLAMA_70B, QWEN_14B}),
    )
