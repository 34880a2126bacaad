"""Multi-turn chat sessions behind a long system prompt.

Sources: the vLLM paper (Kwon et al., SOSP'23) reports ShareGPT conversations with a
mean of 161 input and 338 output tokens per turn; SGLang (Zheng et al., NeurIPS'24,
RadixAttention) and Preble (Srivatsa et al., ICLR'25) motivate prefix caching with
chat and agent products whose every request starts with the same long system prompt.
A session replays its turns back to back: turn i reads the system prompt, the whole
history and the new user message.

Token counts used (cv in brackets):

- product (one per session, uniform): a support bot on llama-3.1-8b with a 3,000-token
  system prompt, a coding assistant on qwen2.5-14b with 6,000 tokens, an enterprise
  assistant on llama-3.1-70b with 1,500 tokens (our choice of three long prompts);
- turns: 2-8;
- user message ~161 tokens (0.8, 4-2,000); reply ~338 tokens (0.6, 10-2,000).
"""

from __future__ import annotations

import numpy as np

from airflow_fate.domain.workload import PrefixSpec, StageSpec
from airflow_fate.workloads.model_names import LLAMA_8B, LLAMA_70B, QWEN_14B
from airflow_fate.workloads.sampling import around, count, pick
from airflow_fate.workloads.template import StageList, Template

NAME = "chat-session"
PRODUCTS = (
    (LLAMA_8B, PrefixSpec(id=f"{NAME}/support-system-v1", tokens=3000)),
    (QWEN_14B, PrefixSpec(id=f"{NAME}/coding-system-v1", tokens=6000)),
    (LLAMA_70B, PrefixSpec(id=f"{NAME}/enterprise-system-v1", tokens=1500)),
)


def build(rng: np.random.Generator) -> list[StageSpec]:
    """One session: a chain of turns on the product's model."""
    model, system = pick(rng, PRODUCTS, [1, 1, 1])
    wf = StageList()
    history = 0
    previous: str | None = None
    for t in range(count(rng, 2, 8)):
        user = around(rng, 161, 0.8, lo=4, hi=2000)
        reply = around(rng, 338, 0.6, lo=10, hi=2000)
        previous = wf.add(
            f"turn_{t}",
            model,
            system.tokens + history + user,
            reply,
            parents=[previous] if previous else [],
            prefix=system,
        )
        history += user + reply
    return wf.stages()


TEMPLATE = Template(NAME, build, frozenset(m for m, _ in PRODUCTS))
