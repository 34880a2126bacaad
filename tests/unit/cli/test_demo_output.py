"""The demo's output: a placements table whole at 80 columns, and demo.json's placements
carrying their measured breakdown (no full demo run: rows as the store returns them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

from rich.console import Console

from airflow_fate.cli import build_parser
from airflow_fate.cli.demo import _print_placements, result_document
from airflow_fate.demo.environment import DagRunState
from airflow_fate.executor.store import PlacementRow
from airflow_fate.launch.types import TaskKey

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _row(dag: str, task: str, model: str, *, warm: bool, kv: bool = False) -> PlacementRow:
    return PlacementRow(
        key=TaskKey(dag, task, "manual__2026-01-01T00:00:00+00:00", 1),
        policy="fate",
        node="local",
        gpus=(2,),
        model=model,
        predicted={"wait": 0.0, "load": 26.84, "input": 0.0, "prefill": 1.5, "decode": 12.0},
        state="success",
        pid=123,
        start=T0,
        end=T0 + timedelta(seconds=31.5),
        run_s=31.5,
        measured={
            "load_s": 0.0 if warm else 16.7,
            "prefill_s": 1.234,
            "decode_s": 12.5,
            "model_warm": warm,
            "prefix_warm": kv,
        },
    )


ROWS = [
    _row("fate_map_reduce_summary", "embed_summary", "all-minilm-l6-v2", warm=False),
    _row("fate_map_reduce_summary", "summarise_1", "smollm2-135m-instruct", warm=True, kv=True),
    _row("fate_multi_agent_review", "revise", "smollm2-135m-instruct", warm=False),
]


def test_the_placements_table_is_whole_at_80_columns() -> None:
    buffer = StringIO()
    console = Console(file=buffer, width=80, force_terminal=False, color_system=None)
    _print_placements(console, ROWS)
    text = buffer.getvalue()
    assert "…" not in text, text
    assert max(len(line) for line in text.splitlines()) <= 80, text
    for expected in (
        "fate_map_reduce_summary (policy fate)",
        "embed_summary",
        "summarise_1",
        "smollm2-135m-instruct",
        "all-minilm-l6-v2",
        "local:2",
        "cold",
        "warm+kv",
        "16.70",
        "1.23",
        "12.50",
        "load",
        "prefill",
        "decode",
        "measured seconds",
    ):
        assert expected in text, f"{expected!r} missing from\n{text}"


def test_demo_json_placements_carry_their_measured_breakdown() -> None:
    runs = [DagRunState("fate_map_reduce_summary", "manual__2026-01-01T00:00:00+00:00", "success")]
    doc = result_document(runs, ROWS, 42.0, {})
    assert set(doc) == {"dag_runs", "placements", "wall_s", "executor"}
    first = doc["placements"][0]
    assert first["model"] == "all-minilm-l6-v2" and first["state"] == "success"
    assert first["measured"]["load_s"] == 16.7 and first["measured"]["model_warm"] is False
    assert first["predicted"]["load"] == 26.84 and first["run_s"] == 31.5


def test_the_demo_writes_under_out_by_default() -> None:
    args = build_parser().parse_args(["demo"])
    assert args.json == Path("out/demo/demo.json")
    assert args.compare_json == Path("out/demo/compare.json")


def test_stage_progress_announces_loads_and_finishes() -> None:
    from dataclasses import replace

    from airflow_fate.cli.demo import StageAnnouncer

    lines: list[str] = []
    announce = StageAnnouncer(lines.append)
    running = replace(ROWS[2], measured=None, run_s=None, end=None)
    announce.update([running])
    announce.update([running])  # said once
    assert lines == ["loading smollm2-135m-instruct on local:2 for revise (cold, ~27 s predicted)"]
    announce.update([ROWS[2]])
    assert lines[1].startswith("revise finished on local:2 in 31.5 s (cold; load 16.70")
    warm = replace(ROWS[1], predicted={"load": 0.0})
    announce.update([warm])
    assert lines[2] == "summarise_1 on local:2: smollm2-135m-instruct resident (warm)"


def test_run_describes_each_stage_start_and_end() -> None:
    from airflow_fate.cli.run import describe_note
    from airflow_fate.domain.plan import StageCost
    from airflow_fate.engine.live import StageNote

    cold = StageCost(wait=0.0, load=26.8, input=0.0, prefill=1.5, decode=12.0)
    warm = StageCost(wait=0.0, load=0.0, input=0.0, prefill=1.5, decode=12.0)
    start = StageNote("wf-0/answer", "smollm2-135m-instruct", (1,), cold)
    assert describe_note(start) == (
        "loading smollm2-135m-instruct on gpu 1 for wf-0/answer (cold, ~27 s predicted)"
    )
    resident = StageNote("wf-0/answer", "smollm2-135m-instruct", (1,), warm)
    assert describe_note(resident) == (
        "wf-0/answer on gpu 1: smollm2-135m-instruct resident (~13.5 s)"
    )
    done = StageNote("wf-0/answer", "smollm2-135m-instruct", (1,), cold, cold, False, 40.25)
    assert describe_note(done) == (
        "wf-0/answer finished on gpu 1 in 40.2 s (cold; load 26.80, prefill 1.50, decode 12.00)"
    )


def test_run_writes_under_out_by_default() -> None:
    args = build_parser().parse_args(["run", "--cluster", "c", "--models", "m", "--workload", "w"])
    assert args.json == Path("out/run/result.json")
