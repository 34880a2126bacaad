"""``airflow-fate replay``: what past DAG runs would have cost under other policies.

Rebuilds the workload the chosen runs executed from Airflow's metadata database (the
fate_placement rows with measured times, the runs' serialized DAGs and their stages'
metadata), calibrates the cost model on what was measured, and re-simulates it under
each policy with the simulator `simulate` uses. Airflow's own time around each stage
(task processes starting and ending, the scheduler's hand-offs, CPU tasks) is kept as
measured. Runs of other DAGs that shared the GPUs meanwhile are replayed too; the figures
count the chosen runs only. Prints one row per policy against the measured run (makespan,
mean and P95 latency, model loads, load and GPU-wait seconds, prefix-KV hits) and how
far the replay of the policy that ran is from the run: the cost model's error on it.

The database and the [fate] options (cluster, models, horizon, planner_time_limit_s)
are those of the Airflow installation at --home, as Airflow itself reads them
(airflow.cfg there, AIRFLOW__* variables first); --db-url, --cluster and --models
override them.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from airflow_fate.atomic_file import write_atomically
from airflow_fate.cli.common import check_policy
from airflow_fate.errors import InputError
from airflow_fate.replay.report import ReplayReport
from airflow_fate.replay.summary import summary_lines

COLUMNS = ("policy", "makespan", "vs run", "mean", "P95", "loads", "load s", "wait s", "prefix")
LEGEND = (
    "seconds; *: the policy that ran; vs run: makespan against the measured run;",
    "mean, P95: run latency; loads: model loads; wait s: GPU wait once queued;",
    "prefix: stages that reused a prefix's KV",
)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "replay",
        help="replay past DAG runs under every policy (what if)",
        description=__doc__,
    )
    p.add_argument("--dag-id", nargs="+", required=True, help="DAG ids whose runs to replay")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--run-id", default=None, help="one run (of a single --dag-id)")
    which.add_argument(
        "--since",
        default=None,
        help="every run started at or after this ISO time, UTC unless it says (default: every run)",
    )
    p.add_argument(
        "--policy",
        default="all",
        help="'all' or a comma list of policies; the policy that ran is always replayed",
    )
    p.add_argument("--json", type=Path, default=None, help="write the replay here as JSON")
    p.add_argument(
        "--home",
        type=Path,
        default=None,
        help="AIRFLOW_HOME to read (default: $AIRFLOW_HOME, else ~/airflow)",
    )
    p.add_argument(
        "--db-url", default=None, help="metadata DB URL (default: that home's configuration)"
    )
    p.add_argument(
        "--cluster", type=Path, default=None, help="cluster.yaml (default: [fate] cluster)"
    )
    p.add_argument("--models", type=Path, default=None, help="models.yaml (default: [fate] models)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.run_id is not None and len(args.dag_id) != 1:
        raise InputError("--run-id", "", "needs exactly one --dag-id")
    since = _since(args.since)
    policies = _policies(args.policy)
    if args.home is not None:
        if not args.home.is_dir():
            raise InputError("--home", "", f"no such directory: {args.home}")
        os.environ["AIRFLOW_HOME"] = str(args.home.resolve())
    report = _replay(args, since, policies)
    print_report(report, Console())
    if args.json is not None:
        write_atomically(args.json, report.model_dump_json(indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _replay(
    args: argparse.Namespace, since: datetime | None, policies: tuple[str, ...] | None
) -> ReplayReport:
    """Read and replay; Airflow is imported here, after AIRFLOW_HOME is set."""
    from airflow.configuration import conf

    from airflow_fate.executor.runtime import store_engine
    from airflow_fate.executor.store import FateStore
    from airflow_fate.replay.config import replay_inputs
    from airflow_fate.replay.reading import RunReader
    from airflow_fate.replay.whatif import ReplayRequest, what_if

    def get(section: str, key: str) -> str | None:
        value: str | None = conf.get(section, key, fallback=None)
        return value

    url = args.db_url or get("database", "sql_alchemy_conn")
    if not url:
        raise InputError("--db-url", "", "not given and Airflow has no sql_alchemy_conn")
    engine = store_engine(url)
    store_conn = (get("fate", "store_conn") or "").strip()
    store = FateStore(store_engine(store_conn) if store_conn else engine)
    try:
        inputs = replay_inputs(get, args.cluster, args.models)
        request = ReplayRequest(tuple(args.dag_id), args.run_id, since, policies)
        return what_if(RunReader(engine, store), request, inputs)
    finally:
        engine.dispose()
        store.engine.dispose()


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InputError("--since", "", f"not an ISO date or time: {text!r}") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _policies(text: str) -> tuple[str, ...] | None:
    if text.strip() == "all":
        return None
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise InputError("--policy", "", "expected 'all' or a comma list of policies")
    for name in names:
        check_policy(name)
    return names


def print_report(report: ReplayReport, console: Console) -> None:
    """The table and the lines under it (what the README shows)."""
    chosen = [r for r in report.runs if r.chosen]
    others = len(report.runs) - len(chosen)
    shared = f", with {others} run(s) of other DAGs that shared the GPUs" if others else ""
    console.print(
        f"replay of {', '.join(report.dag_ids)}: {len(chosen)} run(s){shared}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(_table(report))
    for line in [*LEGEND, *summary_lines(report)]:
        console.print(line, highlight=False, soft_wrap=True)


def _table(report: ReplayReport) -> Table:
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0))
    for name in COLUMNS:
        table.add_column(name, justify="left" if name == "policy" else "right", no_wrap=True)
    table.add_row("measured", *_cells(report.measured), style="bold")
    for row in report.rows:
        name = f"{row.policy}*" if row.ran else row.policy
        if row.figures is None or row.delta is None:
            table.add_row(name, "unrun", "", "", "", "", "", "", "")
            continue
        cells = _cells(row.figures)
        cells[1] = f"{row.delta.makespan_pct:+.1f}%"
        table.add_row(name, *cells)
    return table


def _cells(f: Any) -> list[str]:
    return [
        f"{f.makespan_s:.1f}",
        "",
        f"{f.mean_latency_s:.1f}",
        f"{f.p95_latency_s:.1f}",
        str(f.loads),
        f"{f.load_s:.1f}",
        f"{f.wait_s:.1f}",
        str(f.prefix_hits),
    ]
