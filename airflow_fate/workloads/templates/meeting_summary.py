"""Meeting minutes from a recording: Whisper transcription, then parallel LLM analyses.

Sources: Whisper (Radford et al., ICML'23) encodes audio in 30-second windows of
log-Mel frames into 1,500 encoder positions each; OpenAI's cookbook "Creating an
automated meeting minutes generator with Whisper and GPT-4" transcribes a recording
and runs four analyses over the transcript (abstract summary, key points, action items,
sentiment), each with its own short system prompt.

Token counts used (cv in brackets):

- recording: 15-45 minutes, transcribed in 3-9 parallel 5-minute segments;
- transcribe_i: 10 windows x 1,500 = 15,000 encoder positions -> ~1,000 text tokens
  (0.25): ~150 spoken words a minute at ~1.33 tokens a word; its output carries
  segment timestamps as well (2x the text bytes);
- each analysis: ~120-token system prompt (prefix) + the whole transcript ->
  abstract ~300, key points ~250, action items ~200, sentiment ~120 tokens (0.3).

Models: whisper-large-v3 transcribes; llama-3.1-70b writes the abstract, qwen2.5-14b
the key points and action items, llama-3.1-8b the sentiment.
"""

from __future__ import annotations

import numpy as np

from airflow_fate.domain.workload import PrefixSpec, StageSpec
from airflow_fate.workloads.model_names import LLAMA_8B, LLAMA_70B, QWEN_14B, WHISPER
from airflow_fate.workloads.sampling import around, count, text_mb
from airflow_fate.workloads.template import StageList, Template

NAME = "meeting-summary"
WINDOW_POSITIONS = 1500
WINDOWS_PER_SEGMENT = 10
ANALYSES = (
    ("abstract", LLAMA_70B, PrefixSpec(id=f"{NAME}/abstract-v1", tokens=110), 300),
    ("key_points", QWEN_14B, PrefixSpec(id=f"{NAME}/key-points-v1", tokens=120), 250),
    ("action_items", QWEN_14B, PrefixSpec(id=f"{NAME}/action-items-v1", tokens=125), 200),
    ("sentiment", LLAMA_8B, PrefixSpec(id=f"{NAME}/sentiment-v1", tokens=115), 120),
)


def build(rng: np.random.Generator) -> list[StageSpec]:
    """Parallel segment transcriptions, then four parallel analyses of the transcript."""
    wf = StageList()
    segments: list[str] = []
    transcript = 0
    for i in range(count(rng, 3, 9)):
        text = around(rng, 1000, 0.25, lo=100)
        segments.append(
            wf.add(
                f"transcribe_{i}",
                WHISPER,
                WINDOWS_PER_SEGMENT * WINDOW_POSITIONS,
                text,
                output_mb=2 * text_mb(text),
            )
        )
        transcript += text
    for name, model, prompt, mean in ANALYSES:
        wf.add(
            name,
            model,
            prompt.tokens + transcript,
            around(rng, mean, 0.3),
            parents=segments,
            prefix=prompt,
        )
    return wf.stages()


TEMPLATE = Template(NAME, build, frozenset({WHISPER, LLAMA_8B, LLAMA_70B, QWEN_14B}))
