"""Question answering over a scanned multi-page document with a vision-language model.

Sources: Qwen2.5-VL (Bai et al., 2025) reads images at native resolution with 14-pixel
patches merged 2x2, i.e. one visual token per 28x28 pixels, so an A4 page rendered at
about 1,000 x 1,400 pixels is ~1,800 tokens; parse-then-retrieve document pipelines
(VLM page transcription as in olmOCR, Poznanski et al., 2025; multi-page document VQA
as in M3DocRAG, Cho et al., 2024) transcribe every page, index the text, answer from
the retrieved chunks and check the answer against the cited page image.

Token counts used (cv in brackets):

- pages: 2-12, transcribed in parallel;
- page_i: 150-token transcription prompt (prefix) + ~1,800 visual tokens (0.25)
  -> ~520 tokens of markdown (0.4);
- embed: every page's text, as 256-token chunks; the index it hands on holds one vector
  and the text of each chunk;
- answer: 400-token system prompt (prefix) + ~40-token question + 4 chunks of 256
  -> ~220 tokens (0.4);
- verify: 120-token grounding prompt (prefix) + the cited page's visual tokens + the
  answer -> ~60 tokens (0.4).

Models: qwen2.5-vl-7b transcribes and verifies, bge-large-en-v1.5 embeds, qwen2.5-14b
answers.
"""

from __future__ import annotations

import math

import numpy as np

from airflow_fate.domain.workload import PrefixSpec, StageSpec
from airflow_fate.workloads.model_names import BGE_EMBED, QWEN_14B, QWEN_VL_7B
from airflow_fate.workloads.sampling import around, count, embeddings_mb, text_mb
from airflow_fate.workloads.template import StageList, Template

NAME = "document-vqa"
PAGE_PROMPT = PrefixSpec(id=f"{NAME}/transcribe-page-v1", tokens=150)
ANSWER_PROMPT = PrefixSpec(id=f"{NAME}/answer-system-v1", tokens=400)
VERIFY_PROMPT = PrefixSpec(id=f"{NAME}/verify-v1", tokens=120)
CHUNK_TOKENS = 256
RETRIEVED_CHUNKS = 4


def build(rng: np.random.Generator) -> list[StageSpec]:
    """page transcriptions -> embed -> answer -> verify."""
    wf = StageList()
    pages: list[str] = []
    visual: list[int] = []
    text = 0
    for p in range(count(rng, 2, 12)):
        image = around(rng, 1800, 0.25, lo=300)
        out = around(rng, 520, 0.4)
        pages.append(
            wf.add(f"page_{p}", QWEN_VL_7B, PAGE_PROMPT.tokens + image, out, prefix=PAGE_PROMPT)
        )
        visual.append(image)
        text += out
    embed = wf.add(
        "embed",
        BGE_EMBED,
        text,
        0,
        parents=pages,
        output_mb=embeddings_mb(math.ceil(text / CHUNK_TOKENS)) + text_mb(text),
    )
    answer_out = around(rng, 220, 0.4)
    answer = wf.add(
        "answer",
        QWEN_14B,
        ANSWER_PROMPT.tokens + around(rng, 40, 0.5, lo=8) + RETRIEVED_CHUNKS * CHUNK_TOKENS,
        answer_out,
        parents=[embed],
        prefix=ANSWER_PROMPT,
    )
    cited = visual[int(rng.integers(len(visual)))]
    wf.add(
        "verify",
        QWEN_VL_7B,
        VERIFY_PROMPT.tokens + cited + answer_out,
        around(rng, 60, 0.4),
        parents=[answer],
        prefix=VERIFY_PROMPT,
    )
    return wf.stages()


TEMPLATE = Template(NAME, build, frozenset({QWEN_VL_7B, BGE_EMBED, QWEN_14B}))
