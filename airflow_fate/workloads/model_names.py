"""Catalog names of the models the workload templates use (all in ``examples/models.yaml``).

Templates refer to these constants, never to string literals, so a renamed catalog entry
breaks in one place and the suite's model set can be listed without generating anything.
"""

from __future__ import annotations

LLAMA_8B = "llama-3.1-8b-instruct"
LLAMA_70B = "llama-3.1-70b-instruct"
QWEN_14B = "qwen2.5-14b-instruct"
QWEN_VL_7B = "qwen2.5-vl-7b-instruct"
WHISPER = "whisper-large-v3"
BGE_EMBED = "bge-large-en-v1.5"
BGE_RERANK = "bge-reranker-large"
