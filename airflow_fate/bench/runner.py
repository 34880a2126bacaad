"""Run benchmark jobs (one policy on one seeded workload each), in parallel processes.

A job is a few scalars: the policy name, the seed and the sweep point. Each worker
process rebuilds its workload from them with the deterministic suite generator instead
of receiving it, so nothing big is pickled, and keeps the last few inputs and workloads
in a small cache: jobs arrive seed by seed, so consecutive jobs in one worker usually
share a workload and generation is paid about once per worker and seed.

A job's result depends only on its settings and its own seed (the workload, the
simulator's noise and the policy's seed all derive from it), never on which worker ran
it or when: results come back in job order, so the output does not depend on the number
of workers. The exceptions are wall-clock fields (planner timings, job seconds) and a
policy whose solver stops on a wall-clock limit: its decisions after such a fallback
depend on machine load (each result counts its ``fallbacks``).

Workers are spawned, not forked: the parent may be drawing a progress bar from a thread,
and forking a threaded process can deadlock the child. A user error inside a worker (an
`InputError`, which cannot be pickled as is) comes back as data and is raised again here.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass

from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.loaders import load_cluster, load_models
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.domain.workload import Workload
from airflow_fate.errors import InputError
from airflow_fate.planner.registry import make_policy
from airflow_fate.sim.simulator import simulate
from airflow_fate.spine.metrics import RunResult
from airflow_fate.state.hosting import Hosting, HostingMode
from airflow_fate.workloads import GenerateRequest, SuiteOptions, generate


@dataclass(frozen=True)
class Setting:
    """What every job of one benchmark shares.

    Attributes:
        suite: workload suite name (`airflow_fate.workloads.SUITES`).
        workflows: workflows per generated workload.
        load: offered load of the generator.
        noise: the simulator's lognormal sigma of actual over estimated runtimes.
        cluster: path of the ``cluster.yaml``.
        models: path of the ``models.yaml``.
        launcher: how stages are hosted (`airflow_fate.state.hosting`).
        pod_start_s: seconds to start a pod (None: the cluster's ``pod_start_s``).
        prestart: worker pods, one per GPU, are up when the run begins (`Hosting`).
    """

    suite: str
    workflows: int
    load: float
    noise: float
    cluster: str
    models: str
    launcher: HostingMode = "local"
    pod_start_s: float | None = None
    prestart: bool = True


@dataclass(frozen=True, order=True)
class Point:
    """One point of the prefix-reuse sweep: shared-prefix fraction and prefix count."""

    prefix_fraction: float
    prefixes: int


@dataclass(frozen=True)
class Job:
    """One simulation: ``policy`` on the workload of ``seed`` (at ``point``, if a sweep).

    Attributes:
        policy: registered policy name.
        seed: seeds the workload, the runtime noise and the policy alike.
        point: the sweep point, or ``None`` for a suite without a sweep.
        keep_bars: return the placements as Gantt bars (only the runs a plot shows).
    """

    policy: str
    seed: int
    point: Point | None = None
    keep_bars: bool = False


@dataclass(frozen=True)
class GanttBar:
    """One placed stage: dense global GPU indices, start and end seconds, its model."""

    gpus: tuple[int, ...]
    start_s: float
    end_s: float
    model: str


@dataclass(frozen=True)
class JobResult:
    """The metrics of one job, small enough to send back from a worker.

    Attributes:
        job: the job that produced it.
        makespan_s: last finish minus first arrival.
        p95_latency_s: 95th percentile workflow latency.
        mean_latency_s: mean workflow latency.
        lower_bound_s: the simulator's makespan lower bound of the workload.
        planner_p99_ms: 99th percentile wall-clock milliseconds of one ``plan`` call.
        decisions: number of ``plan`` calls.
        fallbacks: decisions that fell back to the policy's greedy answer.
        model_loads: stages that loaded their model (cold starts).
        evictions: models evicted to make room.
        pod_starts: pods started (worker pods, or one per stage).
        wall_s: wall-clock seconds of the simulation (timing only).
        bars: the run's placements if ``job.keep_bars``, else empty.
    """

    job: Job
    makespan_s: float
    p95_latency_s: float
    mean_latency_s: float
    lower_bound_s: float
    planner_p99_ms: float
    decisions: int
    fallbacks: int
    wall_s: float
    model_loads: int = 0
    evictions: int = 0
    pod_starts: int = 0
    bars: tuple[GanttBar, ...] = ()


def default_workers() -> int:
    """Two processes at most: the benchmark machine has two cores."""
    return max(1, min(2, os.cpu_count() or 1))


def run_jobs(
    setting: Setting,
    jobs: Sequence[Job],
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[JobResult]:
    """Run every job and return their results in job order.

    Args:
        setting: what the jobs share.
        jobs: the jobs; order them seed by seed so worker caches hit.
        workers: processes (default `default_workers`); 1 runs in this process.
        progress: called with ``(done, total)`` after each job.
    """
    n = workers if workers is not None else default_workers()
    total = len(jobs)
    tick = progress or (lambda done, total: None)
    tick(0, total)
    if n <= 1 or total <= 1:
        results = []
        for i, job in enumerate(jobs):
            results.append(run_job(setting, job))
            tick(i + 1, total)
        return results
    out: list[JobResult | None] = [None] * total
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(n, total), mp_context=context) as pool:
        futures: dict[Future[JobResult | _Failure], int] = {
            pool.submit(_run_in_worker, setting, job): i for i, job in enumerate(jobs)
        }
        for done, future in enumerate(as_completed(futures), start=1):
            result = future.result()
            if isinstance(result, _Failure):
                for f in futures:
                    f.cancel()
                raise InputError(result.source, result.path, result.reason)
            out[futures[future]] = result
            tick(done, total)
    return [r for r in out if r is not None]


@dataclass(frozen=True)
class _Failure:
    """An `InputError` raised in a worker, as picklable fields."""

    source: str
    path: str
    reason: str


def _run_in_worker(setting: Setting, job: Job) -> JobResult | _Failure:
    try:
        return run_job(setting, job)
    except InputError as exc:
        return _Failure(exc.source, exc.path, exc.reason)


def run_job(setting: Setting, job: Job) -> JobResult:
    """Generate (or reuse) the job's workload and simulate its policy on it."""
    cluster, catalog = _inputs(setting.cluster, setting.models)
    workload = _workload(setting, job.seed, job.point)
    policy = make_policy(job.policy, job.seed)
    t0 = time.perf_counter()
    hosting = Hosting.of(
        setting.launcher, cluster, pod_start_s=setting.pod_start_s, prestart=setting.prestart
    )
    result = simulate(
        cluster, catalog, workload, policy, seed=job.seed, noise=setting.noise, hosting=hosting
    )
    wall = time.perf_counter() - t0
    return JobResult(
        job=job,
        makespan_s=result.makespan_s,
        p95_latency_s=result.p95_latency_s,
        mean_latency_s=result.mean_latency_s,
        lower_bound_s=result.lower_bound_s,
        planner_p99_ms=result.planner.p99_ms or 0.0,
        decisions=result.planner.decisions,
        fallbacks=result.planner.fallbacks,
        wall_s=wall,
        model_loads=result.counters.model_loads,
        evictions=result.counters.evictions,
        pod_starts=result.counters.pod_starts,
        bars=gantt_bars(result, cluster, workload) if job.keep_bars else (),
    )


def gantt_bars(result: RunResult, cluster: Cluster, workload: Workload) -> tuple[GanttBar, ...]:
    """The run's placements as bars on global GPU indices, labelled with their model."""
    node_index = {node.name: i for i, node in enumerate(cluster.nodes)}
    model_of = {(wf.id, s.id): s.model for wf in workload.workflows for s in wf.stages}
    bars = []
    for p in result.placements:
        node_gpus = cluster.node_gpus[node_index[p.node]]
        bars.append(
            GanttBar(
                gpus=tuple(node_gpus[g] for g in p.gpus),
                start_s=p.start_s,
                end_s=p.end_s,
                model=model_of[(p.workflow, p.stage)],
            )
        )
    return tuple(bars)


@functools.lru_cache(maxsize=2)
def _inputs(cluster_path: str, models_path: str) -> tuple[Cluster, ModelCatalog]:
    cluster = load_cluster(cluster_path)
    return cluster, load_models(models_path, cluster)


@functools.lru_cache(maxsize=4)
def _workload(setting: Setting, seed: int, point: Point | None) -> Workload:
    cluster, catalog = _inputs(setting.cluster, setting.models)
    options = (
        SuiteOptions()
        if point is None
        else SuiteOptions(prefix_fraction=point.prefix_fraction, prefixes=point.prefixes)
    )
    request = GenerateRequest(
        suite=setting.suite,
        workflows=setting.workflows,
        seed=seed,
        load=setting.load,
        options=options,
    )
    return generate(request, cluster, catalog).workload
