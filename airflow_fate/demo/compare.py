"""``airflow-fate demo --compare``: the same DAGs under stock LocalExecutor and FateExecutor.

A user's first question is how much faster their DAGs get than with the executor they
have. This runs the example DAGs (``--batches`` batches; a batch is one run of each DAG,
triggered together, and the next batch starts when the previous one has finished) once
under Airflow's own ``LocalExecutor`` and once under `FateExecutor` per ``--policy``
(comma-separated, e.g. ``fate,round-robin``), each in a fresh AIRFLOW_HOME with its own
SQLite database, and prints one row per executor::

    executor             total s  per batch s      model loads  load s  speed-up

Under LocalExecutor a stage's operator finds no device placement and runs the stage in
its own task process (`operators.device_client`), so every stage loads its model there.
Under FateExecutor stages run on long-lived device workers that keep models and prefix
KV warm. Both get the same Airflow settings (``[core] parallelism``) and the same compute
per stage: one CPU thread (``OMP_NUM_THREADS=1`` in every task process), as each of the
embedded default's three virtual devices has one thread.

A batch's time is read from the metadata database, from its first run being queued to its
last run ending, so the Airflow start-up and the trigger command's own start-up count for
neither. Model loads and load seconds come from every stage's ``fate_measured`` XCom,
which the operators push under either executor. The result is also written as JSON::

    {"dags", "batches", "threads_per_stage", "parallelism",
     "rows": [{"label", "executor", "policy", "total_s", "batch_s", "model_loads",
               "load_s", "stages", "tasks", "tasks_succeeded", "speedup", "ok", "failed",
               "setup_s", "parallelism", "runs": [{"batch", "dag_id", "run_id", "state"}]}]}
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy import bindparam, text

from airflow_fate.demo.environment import (
    DAGS_FOLDER,
    AirflowEnvironment,
    DagRunState,
    check_dags_folder,
)
from airflow_fate.errors import InputError

DEFAULT_JSON = Path("out/demo/compare.json")
"""Where the comparison is written unless ``--compare-json`` says otherwise."""

LOCAL_EXECUTOR = "airflow.executors.local_executor.LocalExecutor"
FATE_EXECUTOR = "airflow_fate.executor.FateExecutor"
THREADS_PER_STAGE = 1
"""Torch threads per stage process: the compute of one virtual device of the demo."""

MEASURED_KEY = "fate_measured"

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Contender:
    """One executor configuration to run the DAGs under."""

    label: str
    executor: str
    policy: str | None = None

    @property
    def slug(self) -> str:
        """A short directory name: device-worker sockets live under it (~100-byte limit)."""
        return f"fate-{self.policy}" if self.policy else "local"


@dataclass
class ContenderResult:
    """What one executor did with the batches; see the module docstring's JSON."""

    contender: Contender
    batch_s: list[float] = field(default_factory=list)
    runs: list[tuple[int, DagRunState]] = field(default_factory=list)
    tasks: int = 0
    tasks_succeeded: int = 0
    failed: list[str] = field(default_factory=list)
    stages: int = 0
    model_loads: int = 0
    load_s: float = 0.0
    setup_s: float = 0.0
    expected_batches: int = 0
    parallelism: int = 0

    @property
    def total_s(self) -> float:
        return sum(self.batch_s)

    @property
    def ok(self) -> bool:
        """Every batch finished and every task of every run succeeded."""
        return (
            len(self.batch_s) == self.expected_batches
            and self.tasks > 0
            and self.tasks_succeeded == self.tasks
            and all(r.state == "success" for _, r in self.runs)
        )


def contenders(policies: str) -> list[Contender]:
    """LocalExecutor first (the reference), then FateExecutor once per policy.

    Raises:
        InputError: an unknown policy name.
    """
    from airflow_fate.planner.registry import policy_names

    names = [p.strip() for p in policies.split(",") if p.strip()]
    known = policy_names()
    for name in names:
        if name not in known:
            raise InputError("--policy", "", f"unknown policy {name!r}; one of {known}")
    if not names:
        raise InputError("--policy", "", "give at least one policy")
    fate = [Contender(f"FateExecutor ({n})", FATE_EXECUTOR, n) for n in names]
    return [Contender("LocalExecutor", LOCAL_EXECUTOR), *fate]


def run_compare(args: argparse.Namespace) -> int:
    """The ``--compare`` command: run, print the table, write the JSON; 0 when all ran."""
    if args.batches < 1:
        raise InputError("--batches", "", f"must be >= 1, got {args.batches}")
    if args.timeout <= 0:
        raise InputError("--timeout", "", f"must be > 0, got {args.timeout}")
    if args.db_url is not None:
        raise InputError("--db-url", "", "--compare uses a fresh SQLite database per executor")
    dags_folder = check_dags_folder(args.dags_folder or DAGS_FOLDER)
    entrants = contenders(args.policy)
    from rich.console import Console

    console = Console()
    t0 = time.monotonic()

    def say(line: str) -> None:
        console.print(
            f"[dim]{time.monotonic() - t0:6.1f}s[/dim] {line}", highlight=False, soft_wrap=True
        )

    own = args.home is None
    parent = Path(tempfile.mkdtemp(prefix="fate-compare-")) if own else args.home
    previous = signal.signal(signal.SIGTERM, _interrupt)
    results: list[ContenderResult] = []
    try:
        for c in entrants:
            results.append(
                run_contender(
                    c, parent / c.slug, args.dags, args.batches, args.timeout, say, dags_folder
                )
            )
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: Airflow stopped[/yellow]")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        if own and not args.keep:
            shutil.rmtree(parent, ignore_errors=True)
    for line in table_lines(results):
        console.print(line, markup=False, highlight=False)
    out: Path = args.compare_json
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = result_document(results, args.dags, args.batches)
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    say(f"comparison written to {out}")
    for r in results:
        if not r.ok:
            console.print(f"[red]{r.contender.label}: {', '.join(r.failed) or 'incomplete'}[/red]")
    return 0 if all(r.ok for r in results) else 1


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_contender(
    contender: Contender,
    home: Path,
    dags: Sequence[str],
    batches: int,
    timeout_s: float,
    say: Say,
    dags_folder: Path = DAGS_FOLDER,
) -> ContenderResult:
    """Start a fresh Airflow with this executor, run the batches, read the results, stop."""
    threads = str(THREADS_PER_STAGE)
    env = AirflowEnvironment(
        home,
        dags_folder=dags_folder,
        policy=contender.policy or "fate",
        airflow={"AIRFLOW__CORE__EXECUTOR": contender.executor},
        extra_env={"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads},
    )
    parallelism = int(env.env["AIRFLOW__CORE__PARALLELISM"])
    result = ContenderResult(contender, expected_batches=batches, parallelism=parallelism)
    name = contender.label
    try:
        started = time.monotonic()
        say(f"{name}: starting Airflow in {env.home}")
        env.migrate()
        env.start_api_server()
        env.start_scheduler()
        env.reserialize()
        env.wait_api()
        result.setup_s = time.monotonic() - started
        for batch in range(1, batches + 1):
            runs = env.trigger(dags)
            final = env.wait_runs(runs, timeout_s, poll_s=1.0)
            result.runs.extend((batch, r) for r in final)
            if not all(r.state == "success" for r in final):
                bad = [f"{r.dag_id}={r.state}" for r in final if r.state != "success"]
                result.failed.append(f"batch {batch}: {', '.join(bad)}")
                say(f"{name}: batch {batch}/{batches} did not succeed ({', '.join(bad)})")
                break
            wall = batch_seconds(env, final)
            result.batch_s.append(wall)
            say(f"{name}: batch {batch}/{batches} done in {wall:.1f} s")
        _read_outcome(env, result)
    finally:
        env.stop()
    return result


def _read_outcome(env: AirflowEnvironment, result: ContenderResult) -> None:
    states = env.task_states([r for _, r in result.runs])
    result.tasks = len(states)
    result.tasks_succeeded = sum(1 for s in states.values() if s == "success")
    result.failed.extend(
        f"{d}/{t}={s}" for (d, _, t), s in sorted(states.items()) if s != "success"
    )
    for m in measured(env, [r for _, r in result.runs]):
        result.stages += 1
        if not m.get("model_warm"):
            result.model_loads += 1
        load = m.get("load_s")
        if isinstance(load, int | float):
            result.load_s += float(load)


def batch_seconds(env: AirflowEnvironment, runs: Sequence[DagRunState]) -> float:
    """From the first run's ``queued_at`` to the last run's ``end_date`` (database times)."""
    query = text(
        "SELECT queued_at, start_date, end_date FROM dag_run WHERE dag_id = :d AND run_id = :r"
    )
    starts: list[datetime] = []
    ends: list[datetime] = []
    with env.engine.connect() as conn:
        for r in runs:
            row = conn.execute(query, {"d": r.dag_id, "r": r.run_id}).one()
            begin = _when(row[0]) or _when(row[1])
            end = _when(row[2])
            if begin is None or end is None:
                raise RuntimeError(f"run {r.dag_id} {r.run_id} has no start or end time")
            starts.append(begin)
            ends.append(end)
    return (max(ends) - min(starts)).total_seconds()


def _when(value: Any) -> datetime | None:
    """A database timestamp (a datetime, or SQLite's ISO text) as an aware datetime."""
    if value is None:
        return None
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def measured(env: AirflowEnvironment, runs: Sequence[DagRunState]) -> list[dict[str, Any]]:
    """Every stage's ``fate_measured`` XCom of these runs (whatever executor ran them)."""
    if not runs:
        return []
    query = text("SELECT run_id, value FROM xcom WHERE key = :k AND dag_id IN :dags").bindparams(
        bindparam("dags", expanding=True)
    )
    wanted = {r.run_id for r in runs}
    out: list[dict[str, Any]] = []
    with env.engine.connect() as conn:
        rows = conn.execute(query, {"k": MEASURED_KEY, "dags": sorted({r.dag_id for r in runs})})
        for run_id, value in rows:
            doc = _json(value)
            if isinstance(doc, dict) and run_id in wanted:
                out.append(doc)
    return out


def _json(value: Any) -> Any:
    """An XCom value as stored (JSON text, maybe encoded twice, or already decoded)."""
    for _ in range(2):
        if not isinstance(value, str | bytes):
            return value
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value


def _speedups(results: Sequence[ContenderResult]) -> list[float | None]:
    reference = results[0].total_s if results and results[0].ok else 0.0
    return [
        reference / r.total_s if reference > 0 and r.ok and r.total_s > 0 else None for r in results
    ]


def table_lines(results: Sequence[ContenderResult]) -> list[str]:
    """The side-by-side table, plain text under 80 columns (the README quotes it)."""
    head = (
        f"{'executor':<26}{'total s':>8}  {'per batch s':<17}{'loads':>5}{'load s':>8}"
        f"{'speed-up':>10}"
    )
    lines = [head, "-" * len(head)]
    for r, up in zip(results, _speedups(results), strict=True):
        batches = " + ".join(f"{s:.1f}" for s in r.batch_s) or "-"
        total = f"{r.total_s:.1f}" if r.ok else "failed"
        lines.append(
            f"{r.contender.label:<26}{total:>8}  {batches:<17}{r.model_loads:>5}"
            f"{r.load_s:>8.1f}{(f'{up:.2f}x' if up is not None else '-'):>10}"
        )
    lines.append("loads: stages that loaded their model, load s: seconds they spent loading it,")
    lines.append("speed-up: LocalExecutor's total s over the row's total s")
    return lines


def result_document(
    results: Sequence[ContenderResult], dags: Sequence[str], batches: int
) -> dict[str, Any]:
    """The JSON written by ``--compare`` (see the module docstring)."""
    rows = []
    for r, up in zip(results, _speedups(results), strict=True):
        rows.append(
            {
                "label": r.contender.label,
                "executor": r.contender.executor,
                "policy": r.contender.policy,
                "total_s": round(r.total_s, 2),
                "batch_s": [round(s, 2) for s in r.batch_s],
                "model_loads": r.model_loads,
                "load_s": round(r.load_s, 2),
                "stages": r.stages,
                "tasks": r.tasks,
                "tasks_succeeded": r.tasks_succeeded,
                "speedup": round(up, 3) if up is not None else None,
                "ok": r.ok,
                "failed": r.failed,
                "setup_s": round(r.setup_s, 2),
                "parallelism": r.parallelism,
                "runs": [
                    {"batch": b, "dag_id": s.dag_id, "run_id": s.run_id, "state": s.state}
                    for b, s in r.runs
                ],
            }
        )
    return {
        "dags": list(dags),
        "batches": batches,
        "threads_per_stage": THREADS_PER_STAGE,
        "parallelism": max((r.parallelism for r in results), default=0),
        "rows": rows,
    }
