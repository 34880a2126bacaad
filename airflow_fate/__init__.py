"""airflow-fate: future-state-aware GPU scheduling of multi-stage LLM pipelines."""

from __future__ import annotations

__version__ = "0.1.0"
