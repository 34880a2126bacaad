"""The placement Gantt of one DAG run: stages on GPU rows, predicted against measured.

Pure layout (positions in percent of the run's time span), so the page template only
draws what this module computed and tests can check the geometry without a browser.

Each try gets one bar per GPU it held (the first is ``primary``; the others mark the rest
of a shard group); CPU tasks go to ``cpu`` rows. Tries that overlap on one resource (CPU
slots, or a GPU row when records overlap) are spread over extra lanes of that row.
A bar has three layers:

- ``span``: the task process, from launch to the exit the executor saw (now, if open):
  the time the try held its GPUs in the planner's view;
- ``measured``: the stage time the device worker measured, drawn at the end of the span
  (the task process starts Python and Airflow first, then sends the stage);
- ``predicted``: the planner's predicted GPU time (load + input + prefill + decode),
  drawn from the same start as ``measured`` so the two compare directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from airflow_fate.ui.colours import model_colour
from airflow_fate.ui.schemas import Placement

CPU_ROW = "cpu"
MIN_SPAN_S = 1.0
"""A run shorter than this is drawn over this span (keeps widths finite)."""


@dataclass(frozen=True, slots=True)
class Bar:
    task_id: str
    map_index: int
    try_number: int
    state: str
    model: str
    colour: str
    primary: bool
    left: float
    width: float
    measured_left: float | None
    measured_width: float | None
    predicted_left: float | None
    predicted_width: float | None
    open: bool
    model_warm: bool | None
    prefix_warm: bool | None
    title: str


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    bars: tuple[Bar, ...]


@dataclass(frozen=True, slots=True)
class Tick:
    left: float
    label: str


@dataclass(frozen=True, slots=True)
class Gantt:
    rows: tuple[Row, ...]
    ticks: tuple[Tick, ...]
    start: datetime | None
    span_s: float
    open: bool
    """Whether any try is still running (the page then refreshes itself)."""

    @property
    def primary_bars(self) -> int:
        return sum(1 for r in self.rows for b in r.bars if b.primary)


def resource_labels(p: Placement) -> list[str]:
    """The rows a try occupies: ``node:gpu`` for each of its GPUs, else ``cpu``."""
    return [f"{p.node}:{g}" for g in p.gpus] if p.gpus else [CPU_ROW]


def gantt(placements: list[Placement], now: datetime) -> Gantt:
    """Lay out ``placements`` (one DAG run) over their time span, ``now`` for open tries."""
    if not placements:
        return Gantt((), (), None, MIN_SPAN_S, False)
    t0 = min(p.start for p in placements)
    t1 = max(_extent_end(p, now) for p in placements)
    span = max((t1 - t0).total_seconds(), MIN_SPAN_S)
    lanes: dict[str, list[list[tuple[datetime, datetime, Bar]]]] = {}
    for p in sorted(placements, key=lambda q: (q.start, q.task_id, q.try_number)):
        end = held_until(p, now)
        for i, label in enumerate(resource_labels(p)):
            bar = _bar(p, t0, span, end, primary=i == 0)
            _place(lanes.setdefault(label, []), p.start, end, bar)
    rows: list[Row] = []
    for label in sorted(lanes, key=_row_order):
        for n, lane in enumerate(lanes[label]):
            name = label if n == 0 else f"{label} ({n + 1})"
            rows.append(Row(name, tuple(b for _, _, b in lane)))
    return Gantt(tuple(rows), _ticks(span), t0, span, any(p.open for p in placements))


def held_until(p: Placement, now: datetime) -> datetime:
    """When the try let go of its GPUs: launch + ``run_s`` (the executor saw its process
    exit then and freed the GPUs; the next stage on them starts after it), ``now`` while
    open. The task's own end in Airflow comes slightly earlier."""
    if p.run_s is not None:
        return p.start + timedelta(seconds=p.run_s)
    return p.end or now


def _extent_end(p: Placement, now: datetime) -> datetime:
    """The latest time the try's bar reaches (its predicted bar may outlast the span)."""
    end = held_until(p, now)
    if p.predicted_run_s is not None and p.on_gpu:
        end = max(end, _stage_start(p, end) + timedelta(seconds=p.predicted_run_s))
    return end


def _stage_start(p: Placement, end: datetime) -> datetime:
    """Where the measured stage time begins: at the end of the span, else at launch."""
    if p.measured_stage_s is None:
        return p.start
    return max(p.start, end - timedelta(seconds=p.measured_stage_s))


def _bar(p: Placement, t0: datetime, span: float, end: datetime, *, primary: bool) -> Bar:
    def pct(t: datetime) -> float:
        return round(100.0 * (t - t0).total_seconds() / span, 3)

    def width(seconds: float) -> float:
        return round(100.0 * max(seconds, 0.0) / span, 3)

    left = pct(p.start)
    measured_left = measured_width = predicted_left = predicted_width = None
    stage_start = _stage_start(p, end)
    if p.measured_stage_s is not None:
        measured_left, measured_width = pct(stage_start), width(p.measured_stage_s)
    if p.predicted_run_s is not None and p.on_gpu:
        predicted_left, predicted_width = pct(stage_start), width(p.predicted_run_s)
    return Bar(
        task_id=p.task_id,
        map_index=p.map_index,
        try_number=p.try_number,
        state=p.state,
        model=p.model,
        colour=model_colour(p.model),
        primary=primary,
        left=left,
        width=max(width((end - p.start).total_seconds()), 0.2),
        measured_left=measured_left,
        measured_width=measured_width,
        predicted_left=predicted_left,
        predicted_width=predicted_width,
        open=p.open,
        model_warm=p.model_warm,
        prefix_warm=p.prefix_warm,
        title=_title(p, end),
    )


def _title(p: Placement, end: datetime) -> str:
    where = f"{p.node} GPUs {p.gpus}" if p.gpus else "CPU slot"
    parts = [f"{p.task_id} (try {p.try_number}) on {where}: {p.state}"]
    if p.model:
        parts.append(f"model {p.model}")
    parts.append(f"process {(end - p.start).total_seconds():.1f} s")
    if p.predicted_run_s is not None and p.on_gpu:
        parts.append(f"predicted {p.predicted_run_s:.2f} s")
    if p.measured_stage_s is not None:
        parts.append(f"measured {p.measured_stage_s:.2f} s")
    if p.model_warm is not None:
        parts.append("model warm" if p.model_warm else "model cold (loaded)")
    if p.prefix_warm:
        parts.append("prefix KV reused")
    return "; ".join(parts)


def _place(
    lanes: list[list[tuple[datetime, datetime, Bar]]], start: datetime, end: datetime, bar: Bar
) -> None:
    """Put the bar in the first lane where it overlaps nothing (first fit)."""
    for lane in lanes:
        if all(end <= s or start >= e for s, e, _ in lane):
            lane.append((start, end, bar))
            return
    lanes.append([(start, end, bar)])


def _row_order(label: str) -> tuple[int, str, int]:
    if label == CPU_ROW:
        return (1, "", 0)
    node, _, gpu = label.rpartition(":")
    return (0, node, int(gpu))


def _ticks(span: float, target: int = 6) -> tuple[Tick, ...]:
    """About ``target`` ticks at a round step (1, 2, 5 x 10^k seconds)."""
    raw = span / target
    step = 1.0
    while step * 10 <= raw:
        step *= 10
    for m in (1.0, 2.0, 5.0, 10.0):
        if step * m >= raw:
            step *= m
            break
    ticks = []
    t = 0.0
    while t <= span + 1e-9:
        ticks.append(Tick(round(100.0 * t / span, 3), f"{t:g} s"))
        t += step
    return tuple(ticks)
