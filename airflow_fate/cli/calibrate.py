"""``airflow-fate calibrate``: measure catalog models on this machine, update ``models.yaml``.

Predictions are only as good as the catalog's rates. For each chosen device (by default
the first of each cluster GPU type) and each catalog model that fits it, a real device
worker times cold loads from the local disk and from the host page cache, then prefill
and decode on the resident model; the medians over ``--repeats`` fresh workers become the
model's rates for that GPU type. The change is shown as a unified diff before it is
written (``--dry-run`` stops there), and the file is checked with the catalog loader that
``simulate`` and ``run`` use. Loads are printed next to the cost model's prediction; the
host-cache load, where reading costs least, becomes the model's ``load_gbps``: the rate
at which the device makes weights resident once their bytes are at hand, which bounds
every load whatever the tier. ``--correction FILE`` also records the loads as
load-correction samples (against the written catalog) that ``run`` and ``simulate
--correction`` apply.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from airflow_fate.calibration.catalog_update import (
    RateUpdate,
    apply_updates,
    merge_base,
    read_document,
    significant,
    unified_diff,
    write_checked,
)
from airflow_fate.calibration.measure import (
    TIERS,
    Measurement,
    Settings,
    Step,
    Tier,
    measure_model,
)
from airflow_fate.calibration.page_cache import can_drop
from airflow_fate.calibration.session import MeasurementError, WorkerSession
from airflow_fate.cli.common import add_inventory_arg
from airflow_fate.cost.correction import CorrectionStore
from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.loaders import load_cluster, load_models
from airflow_fate.domain.models import GIB, ModelCatalog
from airflow_fate.errors import InputError
from airflow_fate.launch.devices import bind_devices
from airflow_fate.runtime.binding import DeviceBinding
from airflow_fate.runtime.errors import StageError
from airflow_fate.runtime.owner_only import NotPrivateError, private_directory
from airflow_fate.runtime.protocol import ModelSource
from airflow_fate.runtime.registry import resolve_model


@dataclass(frozen=True, slots=True)
class Device:
    """A device to measure on and the cluster GPU type it stands for."""

    binding: DeviceBinding
    gpu_type: str


@dataclass(frozen=True, slots=True)
class Job:
    """One model to measure on one device."""

    device: Device
    source: ModelSource


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "calibrate",
        help="measure model load times and token rates here, update models.yaml",
        description=__doc__,
    )
    p.add_argument("--cluster", required=True, type=Path, help="cluster.yaml")
    p.add_argument("--models", required=True, type=Path, help="models.yaml to calibrate")
    add_inventory_arg(p)
    p.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="NAME",
        help="catalog model to measure (repeatable; default: every model with files)",
    )
    p.add_argument(
        "--device",
        action="append",
        default=None,
        metavar="ID",
        help="device id to measure on, e.g. cpu0 or a GPU UUID (repeatable; default: the "
        "first device of each cluster GPU type)",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="models.yaml to write (default: --models)"
    )
    p.add_argument("--repeats", type=int, default=3, help="fresh workers per model (median)")
    p.add_argument("--prompt-tokens", type=int, default=512, help="tokens prefilled per stage")
    p.add_argument("--new-tokens", type=int, default=32, help="tokens decoded per stage")
    p.add_argument("--dry-run", action="store_true", help="measure and show the diff only")
    p.add_argument(
        "--correction",
        type=Path,
        default=None,
        help="also record the measured loads in this cost-correction state file",
    )
    p.add_argument("--stage-timeout", type=float, default=600.0, help="seconds per stage")
    p.add_argument("--run-dir", type=Path, default=None, help="worker sockets and logs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    cluster = load_cluster(args.cluster)
    catalog = load_models(args.models, cluster)
    devices = _devices(args, cluster)
    jobs, skipped = _jobs(args, catalog, devices)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    if not jobs:
        print("error: nothing to measure", file=sys.stderr)
        return 1
    measured, failed = _measure_all(jobs, settings, args.run_dir, args.stage_timeout)
    print_figures(measured, cluster, catalog)
    for line in failed:
        print(f"error: {line}", file=sys.stderr)
    if not measured:
        return 1
    written = _update_catalog(args, cluster, catalog, measured)
    if args.correction is not None and written is not None:
        _record_loads(args.correction, measured, cluster, load_models(written, cluster))
        print(f"load samples recorded in {args.correction}")
    return 1 if failed else 0


def _settings(args: argparse.Namespace) -> Settings:
    for flag, value in (
        ("--repeats", args.repeats),
        ("--prompt-tokens", args.prompt_tokens),
        ("--new-tokens", args.new_tokens),
        ("--stage-timeout", args.stage_timeout),
    ):
        if not value > 0:
            raise InputError(flag, "", f"must be > 0, got {value}")
    return Settings(args.repeats, args.prompt_tokens, args.new_tokens)


def _devices(args: argparse.Namespace, cluster: Cluster) -> list[Device]:
    """The devices to measure on: ``--device`` ids, else the first of each GPU type."""
    bindings = bind_devices(cluster, args.inventory)
    every = [
        Device(b, cluster.nodes[ref.node].gpu_type)
        for b, ref in zip(bindings, cluster.gpus, strict=True)
    ]
    if args.device is None:
        firsts: dict[str, Device] = {}
        for d in every:
            firsts.setdefault(d.gpu_type, d)
        return list(firsts.values())
    by_id = {d.binding.label: d for d in every}
    unknown = [i for i in args.device if i not in by_id]
    if unknown:
        raise InputError(
            "--device", "", f"unknown device {unknown[0]!r} (known: {', '.join(by_id)})"
        )
    return [by_id[i] for i in dict.fromkeys(args.device)]


def _jobs(
    args: argparse.Namespace, catalog: ModelCatalog, devices: Sequence[Device]
) -> tuple[list[Job], list[str]]:
    """(what to measure, why other pairs are left out). Named models must resolve."""
    names = args.model or sorted(catalog.models)
    unknown = [n for n in names if n not in catalog.models]
    if unknown:
        known = ", ".join(sorted(catalog.models))
        raise InputError("--model", "", f"unknown model {unknown[0]!r} (known: {known})")
    base = args.models.resolve().parent
    jobs: list[Job] = []
    skipped: list[str] = []
    for name in dict.fromkeys(names):
        try:
            source = resolve_model(name, catalog, base)
        except StageError as exc:
            if args.model:
                raise InputError(str(args.models), f"models.{name}", exc.message) from None
            skipped.append(f"{name}: {exc.message}")
            continue
        spec = catalog.models[name]
        for device in devices:
            need = spec.weights_bytes + spec.kv_bytes_per_token * (
                args.prompt_tokens + args.new_tokens
            )
            if spec.min_shards > 1:
                skipped.append(f"{name} on {device.binding.label}: needs {spec.min_shards} GPUs")
            elif need > device.binding.memory_bytes:
                skipped.append(
                    f"{name} on {device.binding.label}: needs {need / GIB:.2f} GiB, the "
                    f"{device.gpu_type} budget is {device.binding.memory_bytes / GIB:.2f} GiB"
                )
            else:
                jobs.append(Job(device, source))
    return jobs, skipped


def _measure_all(
    jobs: Sequence[Job], settings: Settings, run_dir: Path | None, stage_timeout_s: float
) -> tuple[list[Measurement], list[str]]:
    """Measure every job in turn; a failed job is reported and the others still run."""
    tiers = len(TIERS) if can_drop() else len(TIERS) - 1
    total = len(jobs) * settings.repeats * (tiers + 2)
    measured: list[Measurement] = []
    failed: list[str] = []
    with _work_dir(run_dir) as where, _progress(total) as step:
        for job in jobs:
            label = f"measuring {job.source.name} on {job.device.binding.label}"
            session = functools.partial(
                WorkerSession, job.device.binding, where, stage_timeout_s=stage_timeout_s
            )
            try:
                measured.append(
                    measure_model(
                        session,
                        job.source,
                        job.device.gpu_type,
                        settings,
                        functools.partial(_labelled, step, label),
                    )
                )
            except MeasurementError as exc:
                failed.append(f"{label}: {exc}")
    return measured, failed


def _labelled(step: Step, label: str, text: str) -> None:
    step(f"{label}: {text}")


@contextmanager
def _work_dir(run_dir: Path | None) -> Iterator[Path]:
    if run_dir is not None:
        try:
            private_directory(run_dir)  # the worker's socket: owner-only
        except NotPrivateError as exc:
            raise InputError("--run-dir", "", str(exc)) from None
        yield run_dir
        return
    with tempfile.TemporaryDirectory(prefix="fate-calibrate-") as tmp:
        yield Path(tmp)


@contextmanager
def _progress(total: int) -> Iterator[Step]:
    """Yield ``step(text)``: a live line on a terminal, else one plain line per step."""
    console = Console(stderr=True)
    if not console.is_terminal:
        count = 0

        def plain(text: str) -> None:
            nonlocal count
            count += 1
            print(f"[{count}/{total}] {text}...", file=sys.stderr, flush=True)

        yield plain
        return
    columns = (SpinnerColumn(), TextColumn("[{task.completed}/{task.total}] {task.description}"))
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("starting", total=total)

        def live(text: str) -> None:
            bar.update(task, advance=1, description=f"{text}...")
            console.print(f"{text}...", style="dim")

        yield live


def profile_load_s(cluster: Cluster, catalog: ModelCatalog, m: Measurement, tier: Tier) -> float:
    """The cost model's single-GPU load estimate of ``m``'s model from ``tier`` on a node
    of its GPU type (`CostModel.load_from`, no correction)."""
    node = next(i for i, n in enumerate(cluster.nodes) if n.gpu_type == m.gpu_type)
    return CostModel(cluster, catalog).load_from(m.model, node, tier)


def print_figures(measured: Sequence[Measurement], cluster: Cluster, catalog: ModelCatalog) -> None:
    """A table of medians: loads (measured vs predicted), prefill and decode rates."""
    table = Table(title="measured (median over repeats; predicted load in brackets)")
    for column in ("model", "device", "GPU type", "load disk s", "load host-cache s"):
        table.add_column(column)
    table.add_column("prefill tok/s", justify="right")
    table.add_column("decode tok/s", justify="right")
    for m in measured:
        loads = []
        for tier in TIERS:
            value = m.median_load_s(tier)
            predicted = profile_load_s(cluster, catalog, m, tier)
            loads.append("-" if value is None else f"{value:.2f} ({predicted:.2f})")
        table.add_row(
            m.model,
            m.device,
            m.gpu_type,
            *loads,
            _rate(m.prefill_rate),
            _rate(m.decode_rate),
        )
    Console(width=160).print(table)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{significant(value):,}"


def _update_catalog(
    args: argparse.Namespace,
    cluster: Cluster,
    catalog: ModelCatalog,
    measured: Sequence[Measurement],
) -> Path | None:
    """Show the diff and (unless ``--dry-run``) write the catalog; the path written."""
    out: Path = args.out or args.models
    models_doc = read_document(args.models)
    base = merge_base(models_doc, args.models, out)
    reference = {name for name, t in cluster.gpu_types.items() if t.relative_speed == 1.0}
    updates = _rate_updates(measured, catalog)
    new = apply_updates(base, models_doc, args.models, out, updates, reference)
    source_name = str(out) if out.exists() else str(args.models)
    diff = unified_diff(base, new, source_name, str(out))
    print(diff or f"no change to {out}", end="" if diff else "\n")
    if args.dry_run:
        print(f"dry run: {out} not written")
        return None
    had_comments = out.exists() and "#" in out.read_text(encoding="utf-8")
    write_checked(new, out, cluster)
    note = " (its comments are not kept)" if had_comments else ""
    print(f"wrote {out}: rates of {len({m.model for m in measured})} model(s){note}")
    return out


def _rate_updates(measured: Sequence[Measurement], catalog: ModelCatalog) -> list[RateUpdate]:
    """One update per (model, GPU type), pooling devices of the same type (median).

    ``load_gbps`` is the weights over the median host-cache load: with the bytes in the
    page cache, what a load still takes is the device making them resident.
    """
    pooled: dict[tuple[str, str], Measurement] = {}
    for m in measured:
        key = (m.model, m.gpu_type)
        into = pooled.setdefault(key, Measurement(m.model, "", m.gpu_type, m.decodes))
        into.prefill_tokens_per_s.extend(m.prefill_tokens_per_s)
        into.decode_tokens_per_s.extend(m.decode_tokens_per_s)
        for tier, samples in m.load_s.items():
            into.load_s.setdefault(tier, []).extend(samples)
    updates = []
    for m in pooled.values():
        prefill = m.prefill_rate
        if prefill is None:
            continue
        decode = m.decode_rate if m.decodes else None
        cached_s = m.median_load_s("host-cache")
        weights_gb = catalog.models[m.model].weights_gib * GIB / 1e9
        load_gbps = weights_gb / cached_s if cached_s else None
        updates.append(RateUpdate(m.model, m.gpu_type, prefill, decode, load_gbps))
    return updates


def _record_loads(
    path: Path, measured: Sequence[Measurement], cluster: Cluster, catalog: ModelCatalog
) -> None:
    """Add each measured load, against its profile estimate, to the correction file."""
    store = CorrectionStore.load(path)
    for m in measured:
        for tier, samples in m.load_s.items():
            estimate = profile_load_s(cluster, catalog, m, tier)
            for seconds in samples:
                store.observe(m.model, m.gpu_type, load=(seconds, estimate))
    store.save(path)
