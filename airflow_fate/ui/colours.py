"""One colour per model, the same on every page and on every refresh.

A stable hash (CRC-32 of the name) picks from a fixed palette, so the GPU map, the Gantt
and the legend agree without sharing state, and a model keeps its colour across runs.
Two models may share a colour when there are more models than palette entries; the
legend and the labels still name them.
"""

from __future__ import annotations

import zlib

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#b07aa1",
    "#76b7b2",
    "#edc948",
    "#e15759",
    "#9c755f",
    "#ff9da7",
    "#bab0ac",
    "#1f77b4",
    "#8c564b",
)
"""Tableau-10 style hues: readable on white and in Airflow's dark theme."""

CPU_COLOUR = "#a8a29e"
"""Tasks without a model (CPU tasks) are grey."""


def model_colour(model: str) -> str:
    """The colour of ``model`` (grey for the empty name of a CPU task)."""
    if not model:
        return CPU_COLOUR
    return PALETTE[zlib.crc32(model.encode("utf-8")) % len(PALETTE)]
