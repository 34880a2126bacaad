"""FATE: future-state-aware frontier planning with CP-SAT, and its ablations."""

from __future__ import annotations

from airflow_fate.planner.fate.config import ABLATION_NOTES, ABLATIONS, FateConfig
from airflow_fate.planner.fate.policy import Fate

__all__ = ["ABLATIONS", "ABLATION_NOTES", "Fate", "FateConfig"]
