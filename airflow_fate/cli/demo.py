"""``airflow-fate demo``: the example DAGs on a real Airflow with FateExecutor, end to end.

Creates an AIRFLOW_HOME (SQLite, or ``--db-url``), migrates it, starts the API server
and the scheduler, serialises the example DAGs, triggers one run of each, shows progress
live, then prints every task's placement and measured times from ``fate_placement`` and
writes ``--json OUT``::

    {"dag_runs": [{"dag_id", "run_id", "state"}],
     "placements": [{"dag_id", "task_id", "node", "gpus", "model", "policy", "state",
                     "start", "end", "run_s", "predicted": {...}, "measured": {...}}],
     "wall_s": ..., "executor": {...}}

``predicted`` is the cost model's breakdown in seconds (wait, load, input, prefill,
decode); ``measured`` is what the stage reported (``load_s``, ``prefill_s``,
``decode_s``, ``model_warm``, ``prefix_warm``, tokens...), null for tasks that ran no
stage. ``--json`` defaults to ``out/demo/demo.json``.

With ``--serve`` the API server and scheduler keep running after the runs, so the
Airflow UI and its FATE monitor (GPU map, run Gantt, "why this GPU") can be browsed
at the printed address until Ctrl-C.

Every process it started is stopped at the end (process groups, SIGTERM then SIGKILL),
also on Ctrl-C or SIGTERM. Exit code 0 when every DAG run succeeded.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from airflow_fate.errors import InputError

if TYPE_CHECKING:
    from airflow_fate.demo.environment import AirflowEnvironment, DagRunState
    from airflow_fate.executor.store import PlacementRow

DEMO_DAGS = (
    "fate_rag_judge",
    "fate_map_reduce_summary",
    "fate_multi_agent_review",
    "fate_taskflow_summary_judge",
)
"""The example DAGs the demo triggers (``dags/`` of the repository checkout); the last
is written with the TaskFlow decorators (``@task.fate_llm`` and friends)."""
DEFAULT_JSON = Path("out/demo/demo.json")
"""Under the git-ignored ``out/``, as every other command's default output."""


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="run the example DAGs on Airflow with FateExecutor",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        help="write runs and placements here (default: out/demo/demo.json)",
    )
    p.add_argument("--policy", default="fate", help="planner policy (default: fate)")
    p.add_argument("--dags", nargs="+", default=list(DEMO_DAGS), help="DAG ids to trigger")
    p.add_argument(
        "--dags-folder",
        type=Path,
        default=None,
        help="DAG files to serve (default: dags/ of the repository checkout)",
    )
    p.add_argument("--home", type=Path, default=None, help="AIRFLOW_HOME (default: temporary)")
    p.add_argument("--keep", action="store_true", help="keep the AIRFLOW_HOME afterwards")
    p.add_argument("--db-url", default=None, help="metadata DB URL (default: SQLite)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds for the runs")
    p.add_argument(
        "--serve",
        action="store_true",
        help="after the runs, keep Airflow up to browse the UI and FATE monitor (Ctrl-C stops)",
    )
    p.add_argument(
        "--port", type=int, default=None, help="API server / UI port (default: a free one)"
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="run the DAGs under stock LocalExecutor and under FateExecutor (each --policy, "
        "comma-separated) and print a side-by-side table (airflow_fate/demo/compare.py)",
    )
    p.add_argument(
        "--batches", type=int, default=2, help="with --compare: batches of runs (default: 2)"
    )
    p.add_argument(
        "--compare-json",
        type=Path,
        default=Path("out/demo/compare.json"),
        help="with --compare: where the table goes as JSON (default: out/demo/compare.json)",
    )
    p.set_defaults(func=run)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace) -> int:
    if args.compare:
        from airflow_fate.demo.compare import run_compare

        return run_compare(args)
    if args.timeout <= 0:
        raise InputError("--timeout", "", f"must be > 0, got {args.timeout}")
    if args.port is not None and not 0 < args.port < 65536:
        raise InputError("--port", "", f"must be a TCP port (1-65535), got {args.port}")
    from airflow_fate.demo.environment import DAGS_FOLDER, AirflowEnvironment, check_dags_folder

    dags_folder = check_dags_folder(args.dags_folder or DAGS_FOLDER)
    console = Console()
    t0 = time.monotonic()
    own_home = args.home is None
    home = Path(tempfile.mkdtemp(prefix="fate-demo-")) if own_home else args.home
    previous = signal.signal(signal.SIGTERM, _interrupt)
    port = {} if args.port is None else {"port": args.port}
    env = AirflowEnvironment(
        home, db_url=args.db_url, dags_folder=dags_folder, policy=args.policy, **port
    )
    try:
        return _demo(env, args, console, t0)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping Airflow[/yellow]")
        return 130
    finally:
        env.stop()
        signal.signal(signal.SIGTERM, previous)
        if own_home and not args.keep:
            shutil.rmtree(home, ignore_errors=True)
        console.print(f"all processes stopped ({time.monotonic() - t0:.1f} s)")


def _demo(env: AirflowEnvironment, args: argparse.Namespace, console: Console, t0: float) -> int:
    def say(text: str) -> None:
        # soft_wrap: a progress line stays one line in a log, paths in it whole.
        console.print(f"[dim]{time.monotonic() - t0:6.1f}s[/dim] {text}", soft_wrap=True)

    say(f"AIRFLOW_HOME {env.home} ({'SQLite' if args.db_url is None else args.db_url})")
    env.migrate()
    say("metadata database migrated; starting the API server and the scheduler")
    env.start_api_server()
    env.start_scheduler()
    env.reserialize()
    env.wait_api()
    say(f"API server up on port {env.port}; triggering {', '.join(args.dags)}")
    runs = env.trigger(args.dags)
    final = env.wait_runs(runs, args.timeout, _progress(env, runs, say))
    env.wait_placements_closed([r.dag_id for r in runs], 60.0)
    wall = time.monotonic() - t0
    placements = env.placements([r.dag_id for r in runs])
    _print_placements(console, placements)
    ok = all(r.state == "success" for r in final)
    for r in final:
        colour = "green" if r.state == "success" else "red"
        console.print(f"[{colour}]{r.dag_id} {r.run_id}: {r.state}[/{colour}]")
    metrics = env.executor_metrics()
    say(
        f"done: wall {wall:.1f} s from command to all runs done; scheduler-side overhead "
        f"{metrics.get('overhead_ms_per_task', float('nan'))} ms per task"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = result_document(final, placements, wall, metrics)
        args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        say(f"wrote {args.json}")
    if args.serve:
        url = f"http://127.0.0.1:{env.port}"
        say(
            f"serving the Airflow UI at {url}/ (FATE GPU map: {url}/plugin/fate-gpus; "
            "each run's 'GPU placement' tab); Ctrl-C stops"
        )
        serve_until_interrupted(env)
    return 0 if ok else 1


def serve_until_interrupted(env: AirflowEnvironment, poll_s: float = 1.0) -> None:
    """Block while the API server and scheduler run; return on Ctrl-C or SIGTERM.

    Raises:
        RuntimeError: a service exited on its own (its log tail says why).
    """
    try:
        while True:
            env.check_alive("api-server")
            env.check_alive("scheduler")
            time.sleep(poll_s)
    except KeyboardInterrupt:
        return


def _progress(env: AirflowEnvironment, runs: list[DagRunState], say: Any) -> Any:
    last: dict[str, str] = {}
    stages = StageAnnouncer(say)
    dag_ids = sorted({r.dag_id for r in runs})

    def show(states: list[DagRunState]) -> None:
        stages.update(env.placements(dag_ids))
        tasks = env.task_states(runs)
        for r in states:
            mine = {k[2]: v for k, v in tasks.items() if k[:2] == (r.dag_id, r.run_id)}
            done = sum(1 for v in mine.values() if v in ("success", "failed", "skipped"))
            active = [t for t, v in sorted(mine.items()) if v in ("queued", "running")]
            line = f"{r.dag_id}: {r.state}, {done}/{len(mine)} tasks done"
            if active:
                line += f" (active: {', '.join(f'{t}={mine[t]}' for t in active)})"
            if last.get(r.dag_id) != line:
                last[r.dag_id] = line
                say(line)

    return show


class StageAnnouncer:
    """Says when a stage starts (and whether it loads its model) and when it ends.

    Fed the ``fate_placement`` rows at each poll: a new row is a stage placed on its
    GPUs, announced with the cost model's prediction (a cold load is where a user would
    otherwise wait in silence); a row that gains its measured times has finished.
    """

    def __init__(self, say: Any) -> None:
        self._say = say
        self._started: set[tuple[str, str, str, int]] = set()
        self._ended: set[tuple[str, str, str, int]] = set()

    def update(self, rows: list[PlacementRow]) -> None:
        for r in sorted(rows, key=lambda r: r.start):
            if not r.gpus:
                continue  # a task that ran no stage (a plain Python task)
            key = (r.key.dag_id, r.key.task_id, r.key.run_id, r.key.try_number)
            where = f"{r.node}:{','.join(map(str, r.gpus))}"
            if key not in self._started:
                self._started.add(key)
                load = r.predicted.get("load", 0.0)
                if load > 0:
                    self._say(
                        f"loading {r.model} on {where} for {r.key.task_id} "
                        f"(cold, ~{load:.0f} s predicted)"
                    )
                else:
                    self._say(f"{r.key.task_id} on {where}: {r.model} resident (warm)")
            if r.measured and key not in self._ended:
                self._ended.add(key)
                m = r.measured
                self._say(
                    f"{r.key.task_id} finished on {where} in {r.run_s or 0.0:.1f} s "
                    f"({_warm(m)}; load {_seconds(m.get('load_s'))}, prefill "
                    f"{_seconds(m.get('prefill_s'))}, decode {_seconds(m.get('decode_s'))})"
                )


PLACEMENT_COLUMNS = ("task", "gpu", "model", "state", "load", "prefill", "decode")
"""The demo's table: what a user checks first, in seconds; whole at 80 columns."""


def _print_placements(console: Console, rows: list[PlacementRow]) -> None:
    """One table per DAG, its rows in start order; the policy in the title.

    Built to fit 80 columns without cutting a value (a log or a narrow terminal): no
    borders, task ids and model names never truncated, times as plain seconds.
    """
    if not rows:
        console.print("no placements recorded")
        return
    for dag_id in sorted({r.key.dag_id for r in rows}):
        mine = sorted((r for r in rows if r.key.dag_id == dag_id), key=lambda r: r.start)
        # Tasks that ran no stage are recorded under a CPU-slot pseudo-policy.
        policies = ", ".join(sorted({r.policy for r in mine if r.gpus})) or "none"
        console.print(placement_table(f"{dag_id} (policy {policies})", mine))
    console.print("load, prefill, decode: measured seconds; state: cold (model loaded),")
    console.print("warm (model resident), +kv (prefix KV reused)")


def placement_table(title: str, rows: list[PlacementRow]) -> Table:
    """The rows of one DAG as a borderless table (see `_print_placements`)."""
    table = Table(title=title, title_justify="left", box=None, pad_edge=False, padding=(0, 1))
    for col in PLACEMENT_COLUMNS:
        numeric = col in ("load", "prefill", "decode")
        table.add_column(col, justify="right" if numeric else "left", no_wrap=True)
    for r in rows:
        m = r.measured or {}
        table.add_row(
            r.key.task_id,
            f"{r.node}:{','.join(map(str, r.gpus))}" if r.gpus else "-",
            r.model or "-",
            _warm(m),
            _seconds(m.get("load_s")),
            _seconds(m.get("prefill_s")),
            _seconds(m.get("decode_s")),
        )
    return table


def _seconds(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "-"


def _warm(measured: dict[str, Any]) -> str:
    """``cold`` or ``warm`` (the model), ``+kv`` when the prefix KV was reused."""
    if not measured:
        return "-"
    model = "warm" if measured.get("model_warm") else "cold"
    return model + ("+kv" if measured.get("prefix_warm") else "")


def result_document(
    runs: list[DagRunState],
    placements: list[PlacementRow],
    wall_s: float,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """The ``--json`` document (see the module docstring)."""
    return {
        "dag_runs": [{"dag_id": r.dag_id, "run_id": r.run_id, "state": r.state} for r in runs],
        "placements": [
            {
                "dag_id": p.key.dag_id,
                "task_id": p.key.task_id,
                "node": p.node,
                "gpus": list(p.gpus),
                "model": p.model,
                "policy": p.policy,
                "state": p.state,
                "start": p.start.isoformat(),
                "end": p.end.isoformat() if p.end else None,
                "run_s": p.run_s,
                "predicted": p.predicted,
                "measured": p.measured,
            }
            for p in placements
        ],
        "wall_s": round(wall_s, 2),
        "executor": metrics,
    }
