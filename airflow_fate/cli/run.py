"""``airflow-fate run``: execute a workload for real on this machine's devices.

Stages run in local device workers (one per cluster GPU, bound to this machine's GPUs or
to virtual CPU devices) under the chosen policy, with the simulator's decision loop on
the wall clock. The JSON result has the ``simulate`` format, with measured times. The
online cost correction is read from and saved to a small state file (``--correction``).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from airflow_fate.cli.common import add_input_args, add_inventory_arg, check_policy
from airflow_fate.cli.progress import progress_bar
from airflow_fate.cli.simulate import print_summary, write_json
from airflow_fate.cost.correction import CorrectionStore
from airflow_fate.domain.loaders import Inputs, load_inputs
from airflow_fate.engine.calibration import estimate_error
from airflow_fate.engine.live import LiveEngine, LiveOutcome, StageNote
from airflow_fate.errors import InputError
from airflow_fate.launch.devices import bind_devices, unshared_cores_warning
from airflow_fate.launch.local import LocalLauncher
from airflow_fate.planner.registry import make_policy
from airflow_fate.runtime.errors import StageError
from airflow_fate.runtime.protocol import ModelSource
from airflow_fate.runtime.registry import resolve_model


def default_correction_path() -> Path:
    """``$XDG_STATE_HOME/airflow-fate/correction.json`` (``~/.local/state`` by default)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "airflow-fate" / "correction.json"


DEFAULT_JSON = Path("out/run/result.json")
"""Under the git-ignored ``out/``, as every other command's default output."""


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "run", help="run a workload for real on local devices", description=__doc__
    )
    add_input_args(p)
    add_inventory_arg(p)
    p.add_argument(
        "--correction",
        type=Path,
        default=None,
        help=f"cost-correction state file (default: {default_correction_path()})",
    )
    p.add_argument(
        "--no-correction",
        action="store_true",
        help="plan with the profile alone: neither read, learn nor save corrections",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of random policies")
    p.add_argument("--stage-timeout", type=float, default=600.0, help="seconds per stage")
    p.add_argument("--run-timeout", type=float, default=3600.0, help="seconds for the run")
    p.add_argument("--run-dir", type=Path, default=None, help="worker sockets and logs")
    p.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        help="write the full result here (default: out/run/result.json)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_policy(args.policy)
    for flag, value in (
        ("--stage-timeout", args.stage_timeout),
        ("--run-timeout", args.run_timeout),
    ):
        if value <= 0:
            raise InputError(flag, "", f"must be > 0, got {value}")
    inputs = load_inputs(args.cluster, args.models, args.workload)
    resolve = model_resolver(inputs, args.models)
    bindings = bind_devices(inputs.cluster, args.inventory)
    path = args.correction or default_correction_path()
    store = CorrectionStore() if args.no_correction else CorrectionStore.load(path)
    say = functools.partial(print, file=sys.stderr, flush=True)
    if (warning := unshared_cores_warning(inputs.cluster, bindings)) is not None:
        say(f"warning: {warning}")
    if args.no_correction:
        say("cost corrections: not used (--no-correction)")
    else:
        known = "a new file" if not path.exists() else f"{store.learned} learned factors"
        say(f"cost corrections: {path} ({known}; saved there after the run)")
    stages = sum(len(wf.stages) for wf in inputs.workload.workflows)
    say(f"starting {len(bindings)} device workers for {stages} stages")
    with (
        LocalLauncher(bindings, run_dir=args.run_dir) as launcher,
        progress_bar(f"running {args.policy}") as update,
    ):
        outcome = LiveEngine(
            cluster=inputs.cluster,
            catalog=inputs.catalog,
            workload=inputs.workload,
            policy=make_policy(args.policy, args.seed),
            launcher=launcher,
            resolve=resolve,
            corrections=store,
            learn=not args.no_correction,
            seed=args.seed,
            stage_timeout_s=args.stage_timeout,
            run_timeout_s=args.run_timeout,
            progress=update,
            notes=lambda note: say(describe_note(note)),
        ).run()
    if not args.no_correction:
        store.save(path)
        say(f"saved cost corrections to {path}")
    return report(outcome, args.json)


def describe_note(note: StageNote) -> str:
    """One progress line for a stage starting or finishing (see `LiveEngine.notes`)."""
    where = "gpu " + ",".join(map(str, note.gpus))
    if note.measured is None:
        load = note.predicted.load
        if load > 0:
            return (
                f"loading {note.model} on {where} for {note.label} (cold, ~{load:.0f} s predicted)"
            )
        return f"{note.label} on {where}: {note.model} resident (~{note.predicted.total:.1f} s)"
    m = note.measured
    state = "warm" if note.model_warm else "cold"
    return (
        f"{note.label} finished on {where} in {note.seconds or 0.0:.1f} s ({state}; load "
        f"{m.load:.2f}, prefill {m.prefill:.2f}, decode {m.decode:.2f})"
    )


def model_resolver(inputs: Inputs, models_file: Path) -> functools.partial[ModelSource]:
    """A resolver for the workload's models, checked now so a bad catalog fails fast.

    Raises:
        InputError: naming the catalog entry whose model is unknown or missing.
    """
    base = models_file.resolve().parent
    for name in sorted({s.model for wf in inputs.workload.workflows for s in wf.stages}):
        try:
            resolve_model(name, inputs.catalog, base)
        except StageError as exc:
            raise InputError(str(models_file), f"models.{name}", exc.message) from None
    return functools.partial(resolve_model, catalog=inputs.catalog, base_dir=base)


def report(outcome: LiveOutcome, json_path: Path | None) -> int:
    """Print the run's summary (or its failures); write the JSON result when it exists."""
    console = Console()
    if outcome.result is not None:
        print_summary(outcome.result)
        if json_path is not None:
            write_json(outcome.result, json_path)
            print(f"wrote {json_path}")
    err = estimate_error(outcome.samples)
    console.print(
        f"wall {outcome.wall_s:.1f} s; worker restarts {outcome.worker_restarts}\n"
        f"cost-model error over {err.stages} stages, profile -> corrected: "
        f"per stage (MAPE) {err.profile_mape:.0%} -> {err.corrected_mape:.0%}, "
        f"time-weighted (WAPE) {err.profile_wape:.0%} -> {err.corrected_wape:.0%}"
    )
    if outcome.result is not None:
        return 0
    for f in outcome.failed:
        print(f"error: stage {f.stage} failed ({f.reason}): {f.message}", file=sys.stderr)
    if outcome.skipped:
        print(f"skipped (an ancestor failed): {', '.join(outcome.skipped)}", file=sys.stderr)
    return 1
