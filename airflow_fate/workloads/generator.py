"""Generate a workload: seeded template instances with Poisson arrivals at a given load.

Three independent random streams come from one seed, so changing one concern never
shifts another's draws:

- the mix stream picks each workflow's template (independently, with the suite's weights);
- workflow ``i``'s own stream, seeded by ``(seed, i)``, draws its instance, so an instance
  depends only on the seed, its index and its template;
- the arrival stream draws the exponential gaps (`poisson_arrivals`), scaled by the rate
  of `airflow_fate.workloads.load`.

Same request, cluster, catalog and numpy version: the same `Workload`, field for field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.graph import WorkloadGraph
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.domain.workload import WorkflowSpec, Workload
from airflow_fate.errors import InputError
from airflow_fate.workloads.arrivals import poisson_arrivals
from airflow_fate.workloads.load import OfferedLoad, offered_load, stage_work
from airflow_fate.workloads.suites import Mix, SuiteOptions, get_suite

DEFAULT_LOAD = 0.7
_MIX_STREAM, _ARRIVAL_STREAM, _WORKFLOW_STREAM = 1, 2, 3


@dataclass(frozen=True)
class GenerateRequest:
    """What to generate (the ``workload generate`` options, minus files).

    Attributes:
        suite: a name in `airflow_fate.workloads.suites.SUITES`.
        workflows: how many workflows, at least 1.
        seed: non-negative seed of every draw.
        load: offered load rho, > 0 (see `airflow_fate.workloads.load`).
        options: suite-specific options; ``None`` fields take the suite's defaults.
    """

    suite: str
    workflows: int
    seed: int
    load: float = DEFAULT_LOAD
    options: SuiteOptions = field(default_factory=SuiteOptions)


@dataclass(frozen=True)
class GeneratedWorkload:
    """A generated workload with the figures behind its arrival rate."""

    workload: Workload
    offered: OfferedLoad
    options: SuiteOptions

    @property
    def stage_count(self) -> int:
        return sum(len(wf.stages) for wf in self.workload.workflows)

    @property
    def models(self) -> list[str]:
        """Catalog models used, sorted."""
        return sorted({s.model for wf in self.workload.workflows for s in wf.stages})

    @property
    def window_s(self) -> float:
        """Seconds from the first arrival to the last."""
        times = [wf.arrival_s for wf in self.workload.workflows]
        return max(times) - min(times)


def generate(
    request: GenerateRequest, cluster: Cluster, catalog: ModelCatalog
) -> GeneratedWorkload:
    """Build the workload of ``request`` for this cluster and catalog.

    Raises:
        InputError: an option is invalid (naming its flag), the catalog lacks a model
            the suite uses (``--models``) or a stage fits no node (``--cluster``).
    """
    _check_request(request)
    suite = get_suite(request.suite)
    options = suite.resolve(request.options)
    mix = suite.mix(options)
    calibration = suite.calibration_mix(options)
    _check_catalog(mix + calibration, catalog, suite.name)
    offered = offered_load(request.load, calibration, cluster, catalog)
    seed = request.seed
    picks = _pick_templates(np.random.default_rng([seed, _MIX_STREAM]), mix, request.workflows)
    times = poisson_arrivals(
        np.random.default_rng([seed, _ARRIVAL_STREAM]), request.workflows, offered.rate
    )
    workflows = []
    for i, (t, arrival) in enumerate(zip(picks, times, strict=True)):
        template = mix[t][0]
        stages = template.build(np.random.default_rng([seed, _WORKFLOW_STREAM, i]))
        workflows.append(
            WorkflowSpec(
                id=f"{template.name}-{i:05d}",
                template=template.name,
                arrival_s=arrival,
                stages=stages,
            )
        )
    workload = Workload(workflows=workflows)
    _check_fit(workload, cluster, catalog)
    return GeneratedWorkload(workload=workload, offered=offered, options=options)


def _check_request(request: GenerateRequest) -> None:
    if request.workflows < 1:
        raise InputError("--workflows", "", f"must be at least 1, got {request.workflows}")
    if request.seed < 0:
        raise InputError("--seed", "", f"must be >= 0, got {request.seed}")
    if not (math.isfinite(request.load) and request.load > 0):
        raise InputError("--load", "", f"must be a number > 0, got {request.load}")


def _check_catalog(mix: Mix, catalog: ModelCatalog, suite: str) -> None:
    needed = set().union(*(t.models for t, _ in mix))
    missing = sorted(needed - set(catalog.models))
    if missing:
        raise InputError(
            "--models", "", f"suite {suite!r} needs models missing from the catalog: {missing}"
        )


def _pick_templates(rng: np.random.Generator, mix: Mix, n: int) -> list[int]:
    if len(mix) == 1:
        return [0] * n
    weights = np.array([w for _, w in mix], dtype=float)
    return [int(t) for t in rng.choice(len(mix), size=n, p=weights / weights.sum())]


def _check_fit(workload: Workload, cluster: Cluster, catalog: ModelCatalog) -> None:
    """`InputError` on ``--cluster`` when a generated stage fits no node."""
    cost = CostModel(cluster, catalog)
    for stage in WorkloadGraph.from_workload(workload, catalog).stages:
        stage_work(stage, cluster, cost)
