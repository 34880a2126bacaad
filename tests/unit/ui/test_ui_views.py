"""The monitor's pure parts: API models, Gantt layout, GPU map and decision reasons.

No Airflow and no server: rows in, views out. The API server tests
(``tests/integration/airflow/test_ui_monitor.py``) cover auth and real rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_fate.executor.store import LAUNCHED, PlacementRow, PrefixRow, ResidencyRow
from airflow_fate.launch.types import TaskKey
from airflow_fate.operators.stage import failure_report
from airflow_fate.runtime.errors import StageError
from airflow_fate.ui.cluster_map import NodeShape, cluster_map, shapes_from_rows
from airflow_fate.ui.colours import CPU_COLOUR, PALETTE, model_colour
from airflow_fate.ui.decision import decision
from airflow_fate.ui.gantt import gantt
from airflow_fate.ui.schemas import placement

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PREDICTED = {"wait": 0.5, "load": 2.0, "input": 0.25, "prefill": 0.5, "decode": 1.25}


def row(task: str, start_s: float = 0.0, run_s: float | None = 10.0, **kw: Any) -> PlacementRow:
    fields: dict[str, Any] = {
        "key": TaskKey("d", task, "r1", kw.pop("try_number", 1)),
        "policy": "fate",
        "node": "n0",
        "gpus": (0,),
        "model": "small-lm",
        "predicted": dict(PREDICTED),
        "state": "success" if run_s is not None else LAUNCHED,
        "pid": None,
        "start": T0 + timedelta(seconds=start_s),
        "end": T0 + timedelta(seconds=start_s + run_s) if run_s is not None else None,
        "run_s": run_s,
        "measured": {
            "load_s": 1.5,
            "prefill_s": 0.25,
            "decode_s": 1.0,
            "total_s": 3.0,
            "model_warm": False,
            "prefix_warm": True,
            "reused_prefix_tokens": 12,
        },
        "score": 4.0,
        "future_terms": {"residency": 1.0, "locality": 0.0, "prefix": -0.5, "eviction": 2.0},
        "runner_up": (1,),
        "runner_up_score": 6.5,
    }
    fields.update(kw)
    return PlacementRow(**fields)


def test_placement_view_sums_predicted_gpu_time_and_reads_measured() -> None:
    p = placement(row("a"))
    assert p.predicted_run_s == pytest.approx(4.0)  # load + input + prefill + decode, no wait
    assert (p.measured_stage_s, p.model_warm, p.prefix_warm) == (3.0, False, True)
    cpu = placement(row("cpu", node="cpu", gpus=(), model="", predicted={}, measured=None))
    assert (cpu.predicted_run_s, cpu.measured_stage_s, cpu.model_warm) == (None, None, None)
    junk = placement(row("j", measured={"total_s": "3", "model_warm": 1}))
    assert (junk.measured_stage_s, junk.model_warm) == (None, None)


def test_gantt_has_one_primary_bar_per_try_and_lanes_for_overlaps() -> None:
    rows = [
        row("load", 0, 4, node="cpu", gpus=(), model="", predicted={}, measured=None),
        row("side", 1, 4, node="cpu", gpus=(), model="", predicted={}, measured=None),
        row("embed", 4, 6),
        row("shard", 10, 10, gpus=(0, 1), model="big-lm", measured=None, predicted={"load": 5.0}),
    ]
    chart = gantt([placement(r) for r in rows], now=T0 + timedelta(seconds=60))
    assert chart.primary_bars == 4
    assert [r.label for r in chart.rows] == ["n0:0", "n0:1", "cpu", "cpu (2)"]
    by_row = {r.label: [(b.task_id, b.primary) for b in r.bars] for r in chart.rows}
    assert by_row["n0:1"] == [("shard", False)]
    assert by_row["cpu"] == [("load", True)] and by_row["cpu (2)"] == [("side", True)]
    assert chart.span_s == pytest.approx(20.0) and not chart.open
    embed = chart.rows[0].bars[0]
    assert (embed.left, embed.width) == (20.0, 30.0)
    # measured (3 s) ends with the span; predicted (4 s) starts where measured starts
    assert embed.measured_left == pytest.approx(35.0) and embed.measured_width == 15.0
    assert embed.predicted_left == embed.measured_left and embed.predicted_width == 20.0
    assert [t.label for t in chart.ticks][:3] == ["0 s", "5 s", "10 s"]


def test_gantt_extends_to_now_for_open_tries_and_to_overrunning_predictions() -> None:
    now = T0 + timedelta(seconds=30)
    chart = gantt([placement(row("running", 0, None, measured=None))], now=now)
    [bar] = chart.rows[0].bars
    assert chart.open and bar.open and bar.width == 100.0
    late = gantt([placement(row("quick", 0, 1.0, measured=None))], now=now)
    assert late.span_s == pytest.approx(4.0), "the predicted 4 s bar stays inside the chart"
    assert gantt([], now=now).rows == ()
    # Airflow's end (1 s) precedes the process exit the executor saw (8 s): bars use the latter
    held = gantt(
        [placement(row("held", 0, 8.0, end=T0 + timedelta(seconds=1), measured=None))], now=now
    )
    assert held.span_s == pytest.approx(8.0) and held.rows[0].bars[0].width == 100.0


def test_cluster_map_places_residency_prefixes_and_hides_unreadable_runs() -> None:
    residency = [
        ResidencyRow("n0", 0, "small-lm", "gpu", (0,), T0),
        ResidencyRow("n0", 0, "mid-lm", "gpu", (0,), T0 + timedelta(seconds=5)),
        ResidencyRow("n0", -1, "small-lm", "host", (), T0),
    ]
    prefixes = [PrefixRow("n0", 0, "small-lm", "sys", 0.01, 0, T0)]
    running = [
        row("mine", 0, None, gpus=(1,)),
        row("theirs", 0, None, key=TaskKey("secret", "t", "r", 1), node="n1", model="x-lm"),
    ]
    shapes = [NodeShape("n0", 2, "big", 80.0), NodeShape("n1", 1)]
    doc = cluster_map(
        shapes, residency, prefixes, running, lambda dag: dag == "d", source="cluster", now=T0
    )
    n0, n1 = doc.nodes
    gpu0, gpu1 = n0.gpus
    assert [r.model for r in gpu0.resident] == ["small-lm", "mid-lm"]
    assert gpu0.colour == model_colour("mid-lm"), "idle GPU: most recently used model"
    assert [e.prefix_id for e in gpu0.prefix_kv] == ["sys"]
    assert gpu1.running is not None and gpu1.running.task_id == "mine"
    assert gpu1.colour == model_colour("small-lm")
    assert [r.model for r in n0.host_cache] == ["small-lm"]
    hidden = n1.gpus[0].running
    assert hidden is not None and (hidden.dag_id, hidden.task_id, hidden.model) == (None, None, "")
    assert "x-lm" not in doc.models and set(doc.models) == {"small-lm", "mid-lm"}


def test_shapes_from_rows_cover_every_gpu_seen() -> None:
    shapes = shapes_from_rows(
        [ResidencyRow("n1", 0, "m", "gpu", (0,), T0)],
        [PrefixRow("n0", 2, "m", "p", 0.1, 0, T0)],
        [row("a", gpus=(3,), node="n0"), row("c", node="cpu", gpus=())],
    )
    assert [(s.name, s.gpu_count) for s in shapes] == [("n0", 4), ("n1", 1)]


def test_decision_reads_the_latest_try_and_explains_it() -> None:
    rows = [row("a"), row("a", 20, try_number=2, score=3.0, runner_up=(0, 1))]
    d = decision(rows)
    assert d is not None and d.tries == [1, 2] and d.placement.try_number == 2
    assert [line.term for line in d.breakdown] == ["wait", "load", "input", "prefill", "decode"]
    measured = {line.term: line.measured_s for line in d.breakdown}
    assert measured == {"wait": None, "load": 1.5, "input": None, "prefill": 0.25, "decode": 1.0}
    assert d.predicted_total_s == pytest.approx(4.5) and d.margin == pytest.approx(3.5)
    effects = {t.term: t.effect for t in d.future_terms}
    assert effects == {
        "residency": "lowered the score",
        "locality": "none",
        "prefix": "raised the score",
        "eviction": "raised the score",
    }
    assert d.reasons[0] == "The fate policy placed this try on n0 GPU 0."
    assert "small-lm was predicted cold there: 2.00 s to load." in d.reasons
    assert "It reused a warm prefix KV (12 tokens)." in d.reasons
    assert d.reasons[-1] == "The runner-up, GPUs 0, 1, scored 3.50 worse (lower scores win)."
    first = decision(rows, try_number=1)
    assert first is not None and first.placement.try_number == 1
    assert decision(rows, try_number=7) is None and decision([]) is None
    # Rows without the runner-up's breakdown: score against score only.
    assert d.runner_up_total_s is None and {line.runner_up_s for line in d.breakdown} == {None}


def test_decision_compares_with_the_runner_ups_breakdown() -> None:
    other = {"wait": 0.5, "load": 20.0, "input": 0.0, "prefill": 0.25, "decode": 0.75}
    d = decision(
        [
            row(
                "a",
                runner_up=(2,),
                runner_up_node="n1",
                runner_up_predicted=other,
                runner_up_terms={"residency": 0.0, "eviction": 3.0},
            )
        ]
    )
    assert d is not None and d.runner_up_node == "n1"
    assert {line.term: line.runner_up_s for line in d.breakdown} == other
    assert d.runner_up_total_s == pytest.approx(21.5)
    assert d.runner_up_terms == {"residency": 0.0, "eviction": 3.0}
    assert "The runner-up, n1 GPU 2, scored 2.50 worse (lower scores win)." in d.reasons
    assert d.reasons[-1] == "There it would have needed 18.00 s more load than here."


def test_decision_of_cpu_tasks_and_scoreless_policies() -> None:
    cpu = decision([row("c", node="cpu", gpus=(), model="", predicted={}, score=None)])
    assert cpu is not None and cpu.breakdown == [] and "CPU task" in cpu.reasons[0]
    greedy = decision([row("g", policy="greedy-eft", score=None, runner_up=None)])
    assert greedy is not None
    assert greedy.reasons[-1] == "The greedy-eft policy records no score or runner-up."


def test_model_colours_are_stable_and_cpu_is_grey() -> None:
    assert model_colour("small-lm") == model_colour("small-lm") in PALETTE
    assert model_colour("") == CPU_COLOUR


def test_a_try_that_failed_on_its_device_says_why() -> None:
    error = StageError("worker-died", "device worker at /run/w0.sock closed the connection")
    failed = placement(row("f", state="failed", measured=failure_report(error, 1)))
    assert failed.failure == "[worker-died] device worker at /run/w0.sock closed the connection"
    assert (failed.measured_stage_s, failed.model_warm) == (None, None)
    assert placement(row("ok")).failure is None
