"""Chain (refine) summarisation of a long document (Parrot, OSDI'24).

Source: Parrot (Lin et al., OSDI'24, section 8.2) evaluates chain summarisation of
arXiv-March23 papers: the document is cut into chunks and each step summarises the next
chunk together with the running summary, so every step waits for the previous one. Its
experiments sweep the chunk size from 512 to 2,048 tokens and the per-step output
length from 25 to 100 tokens; each instance here draws one value of each.

Token counts used:

- document: ~10,000 tokens (cv 0.35, 3k-30k);
- chunk size: one of 512, 1,024, 1,536, 2,048; steps = ceil(document / chunk), at most 16;
- step: an 80-token refine instruction (shared prefix) + running summary + chunk ->
  one of 25, 50, 75, 100 tokens (cv 0.2 around it).

Model: llama-3.1-8b for every step (Parrot used 7B/13B LLaMA models), which makes this
the long sequential chain of the suite.
"""

from __future__ import annotations

import math

import numpy as np

from airflow_fate.domain.workload import PrefixSpec, StageSpec
from airflow_fate.workloads.model_names import LLAMA_8B
from airflow_fate.workloads.sampling import around, pick
from airflow_fate.workloads.template import StageList, Template

NAME = "chain-summary"
REFINE_PROMPT = PrefixSpec(id=f"{NAME}/refine-prompt-v1", tokens=80)
CHUNK_SIZES = (512, 1024, 1536, 2048)
OUTPUT_LENGTHS = (25, 50, 75, 100)
MAX_STEPS = 16


def build(rng: np.random.Generator) -> list[StageSpec]:
    """A chain of refine steps over one document."""
    document = around(rng, 10_000, 0.35, lo=3000, hi=30_000)
    chunk = pick(rng, CHUNK_SIZES, [1, 1, 1, 1])
    length = pick(rng, OUTPUT_LENGTHS, [1, 1, 1, 1])
    steps = min(MAX_STEPS, math.ceil(document / chunk))
    wf = StageList()
    previous: str | None = None
    summary = 0
    for i in range(steps):
        out = around(rng, length, 0.2, lo=10)
        previous = wf.add(
            f"refine_{i}",
            LLAMA_8B,
            REFINE_PROMPT.tokens + summary + chunk,
            out,
            parents=[previous] if previous else [],
            prefix=REFINE_PROMPT,
        )
        summary = out
    return wf.stages()


TEMPLATE = Template(NAME, build, frozenset({LLAMA_8B}))
