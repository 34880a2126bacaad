"""How stages are hosted on GPUs, and so what GPU state outlives a stage.

The launcher decides whether a finished stage leaves anything useful behind. The state,
the cost model and every policy read that from one `Hosting` value, so the simulator and
the executor model a launcher the same way:

- ``local``: one long-lived device worker process per GPU set on this machine. Weights
  and prefix KV stay resident (LRU within memory) while it lives; like a worker pod it
  is replaced when another GPU set needs some of its GPUs, but it starts at no cost.
- ``worker-pods``: one long-lived worker pod per GPU set (one GPU, or a shard group on
  one node). While the pod lives it keeps weights and prefix KV like a local worker. The
  first stage on a GPU set without a live pod pays ``pod_start_s`` and starts cold; any
  pod holding some of those GPUs for another set is deleted first, with everything it
  held. A pod idle for longer than ``worker_idle_s`` is deleted. With ``prestart`` (the
  default) the pool has one single-GPU pod per GPU, empty, when the run begins: the
  scheduler starts them when it starts, before work arrives, so only shard groups and
  pods that expired or were replaced start on the critical path.
- ``pod-per-stage``: every stage runs in a fresh pod that frees its GPUs on exit (what
  Airflow's KubernetesExecutor does): every stage pays ``pod_start_s`` and a model load,
  and no prefix KV survives. The node's host page cache and disk do persist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from airflow_fate.domain.cluster import Cluster

HostingMode = Literal["local", "worker-pods", "pod-per-stage"]
HOSTING_MODES: tuple[HostingMode, ...] = get_args(HostingMode)

DEFAULT_WORKER_IDLE_S = 3600.0
"""How long a device worker (process or pod) with nothing to run lives on: ``[fate]
worker_idle_s``'s default, and the simulator's."""


@dataclass(frozen=True, slots=True)
class Hosting:
    """The launcher as the cluster state sees it.

    Attributes:
        mode: see the module docstring.
        pod_start_s: seconds from asking for a pod to its worker accepting work (0 for
            ``local``).
        worker_idle_s: a worker with nothing to run for this long is stopped.
        prestart: one empty single-GPU worker per GPU when the run begins; False starts
            every worker on first use.
    """

    mode: HostingMode = "local"
    pod_start_s: float = 0.0
    worker_idle_s: float = math.inf
    prestart: bool = True

    @property
    def keeps_state(self) -> bool:
        """Whether weights and prefix KV outlive the stage that loaded them."""
        return self.mode != "pod-per-stage"

    @property
    def set_workers(self) -> bool:
        """Whether GPU state lives in one worker per exact GPU set (a process or a pod) that
        starts, expires and is replaced when another set needs some of its GPUs.

        True for ``local`` as well: both local launchers retire the workers of a shard
        group's GPUs before starting the group's worker, and the group's worker before a
        single GPU's, and what those workers held goes with them. Only the start differs
        (``pod_start_s``, 0 for a local process)."""
        return self.mode in ("local", "worker-pods")

    @classmethod
    def of(
        cls,
        mode: HostingMode,
        cluster: Cluster,
        *,
        pod_start_s: float | None = None,
        worker_idle_s: float = DEFAULT_WORKER_IDLE_S,
        prestart: bool = True,
    ) -> Hosting:
        """``mode`` with the cluster's pod start figure (``cluster.yaml`` ``pod_start_s``)
        unless ``pod_start_s`` overrides it."""
        if mode == "local":
            return cls()
        start = cluster.pod_start_s if pod_start_s is None else pod_start_s
        return cls(mode=mode, pod_start_s=start, worker_idle_s=worker_idle_s, prestart=prestart)
