"""Pod names, label keys and label-safe values for stage pods.

Airflow ids may hold characters and lengths that Kubernetes labels refuse (``run_id``
values such as ``manual__2026-01-01T00:00:00+00:00``). Labels therefore carry a sanitised
value with a hash suffix whenever sanitising changed it, so two different ids never share
a label; annotations carry the exact ids, which is what adoption checks.

Pod names are a pure function of the task-instance try. That is what makes a 409 from
the API server mean "this try already has a pod" (adopt it) rather than "pick a new
name": the launcher can never start two pods for one try.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from airflow_fate.launch.types import GpuPlacement, TaskKey

PREFIX = "airflow-fate"
EXECUTOR_LABEL = f"{PREFIX}/executor"
DONE_LABEL = f"{PREFIX}/done"
DAG_ID = f"{PREFIX}/dag-id"
TASK_ID = f"{PREFIX}/task-id"
RUN_ID = f"{PREFIX}/run-id"
TRY_NUMBER = f"{PREFIX}/try-number"
MAP_INDEX = f"{PREFIX}/map-index"
NODE_ANNOTATION = f"{PREFIX}/node"
GPU_UUIDS_ANNOTATION = f"{PREFIX}/gpu-uuids"
GPU_INDICES_ANNOTATION = f"{PREFIX}/gpu-indices"
GPU_MODE_ANNOTATION = f"{PREFIX}/gpu-mode"
FINISHED_ANNOTATION = f"{PREFIX}/finished-state"

MANAGED_BY = {"app.kubernetes.io/managed-by": "airflow-fate"}
STAGE_LABELS = {
    "app.kubernetes.io/name": "airflow-fate-stage",
    "app.kubernetes.io/component": "stage",
    "app.kubernetes.io/part-of": "airflow-fate",
    **MANAGED_BY,
}

WORKER_LABELS = {
    "app.kubernetes.io/name": "airflow-fate-worker",
    "app.kubernetes.io/component": "gpu-worker",
    "app.kubernetes.io/part-of": "airflow-fate",
    **MANAGED_BY,
}
"""Labels of GPU worker pods (``kubernetes_mode = worker-pods``); the NetworkPolicy in
``k8s/`` selects them."""
NODE_LABEL = f"{PREFIX}/node"
GPU_SET_LABEL = f"{PREFIX}/gpus"

_LABEL_MAX = 63
_LABEL_OK = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_BAD_CHARS = re.compile(r"[^-A-Za-z0-9_.]")
_DNS_BAD_CHARS = re.compile(r"[^a-z0-9-]+")


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def is_label_value(value: str) -> bool:
    """Whether ``value`` is a valid Kubernetes label value as it stands."""
    return len(value) <= _LABEL_MAX and bool(_LABEL_OK.match(value))


def label_value(value: str) -> str:
    """A valid label value for ``value``; unchanged when already valid.

    Otherwise invalid characters become ``-``, the result is trimmed to fit, and an
    8-hex-digit hash of the original is appended so distinct ids stay distinct.
    """
    if is_label_value(value):
        return value
    suffix = _digest(value, 8)
    body = _LABEL_BAD_CHARS.sub("-", value)[: _LABEL_MAX - len(suffix) - 1]
    body = body.strip("-_.")
    return f"{body}-{suffix}" if body else suffix


def task_labels(key: TaskKey) -> dict[str, str]:
    """Label-safe identity labels of a task-instance try (for selectors)."""
    return {
        DAG_ID: label_value(key.dag_id),
        TASK_ID: label_value(key.task_id),
        RUN_ID: label_value(key.run_id),
        TRY_NUMBER: str(key.try_number),
        MAP_INDEX: str(key.map_index),
    }


def task_annotations(key: TaskKey) -> dict[str, str]:
    """Exact identity of a task-instance try, kept in annotations (no length limit)."""
    return {
        DAG_ID: key.dag_id,
        TASK_ID: key.task_id,
        RUN_ID: key.run_id,
        TRY_NUMBER: str(key.try_number),
        MAP_INDEX: str(key.map_index),
    }


def key_from_annotations(annotations: dict[str, str] | None) -> TaskKey | None:
    """The `TaskKey` stored on a pod, or ``None`` if the pod carries no valid identity."""
    if not annotations:
        return None
    try:
        return TaskKey(
            dag_id=annotations[DAG_ID],
            task_id=annotations[TASK_ID],
            run_id=annotations[RUN_ID],
            try_number=int(annotations[TRY_NUMBER]),
            map_index=int(annotations[MAP_INDEX]),
        )
    except (KeyError, ValueError):
        return None


def placement_annotations(placement: GpuPlacement) -> dict[str, str]:
    """The GPU set a pod holds (node, indices on it, UUIDs), kept in annotations so a
    restarted scheduler reads it back (`placement_from_annotations`)."""
    return {
        NODE_ANNOTATION: placement.node,
        GPU_INDICES_ANNOTATION: ",".join(str(i) for i in placement.gpu_indices),
        GPU_UUIDS_ANNOTATION: ",".join(placement.gpu_uuids),
    }


def placement_from_annotations(pod: Mapping[str, Any]) -> GpuPlacement | None:
    """The GPU set recorded on ``pod`` (`placement_annotations`), or None when it names
    no node or its indices are not integers."""
    annotations = metadata(pod).get("annotations") or {}
    try:
        return GpuPlacement(
            node=annotations.get(NODE_ANNOTATION) or "",
            gpu_indices=tuple(
                int(i) for i in annotations.get(GPU_INDICES_ANNOTATION, "").split(",") if i
            ),
            gpu_uuids=tuple(u for u in annotations.get(GPU_UUIDS_ANNOTATION, "").split(",") if u),
        )
    except ValueError:
        return None


def metadata(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An API object's ``metadata`` as a dict (empty when missing or malformed)."""
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def pod_name(key: TaskKey) -> str:
    """Deterministic DNS-1123 label (<= 63 chars) naming the pod of one try.

    Readable part from dag and task ids, then a hash of the full identity so that tries,
    map indexes and runs never collide.
    """
    ident = "\x00".join(
        (key.dag_id, key.task_id, key.run_id, str(key.try_number), str(key.map_index))
    )
    suffix = _digest(ident, 10)
    readable = _DNS_BAD_CHARS.sub("-", f"{key.dag_id}-{key.task_id}".lower()).strip("-")
    room = _LABEL_MAX - len("fate-") - len(suffix) - 1
    readable = readable[:room].strip("-")
    return f"fate-{readable}-{suffix}" if readable else f"fate-{suffix}"


def claim_name(pod: str) -> str:
    """Name of the DRA ResourceClaim that holds the GPUs of pod ``pod``."""
    return f"{pod}-gpus"


def executor_selector(executor_id: str) -> str:
    """Label selector of the live (not yet finished) pods owned by one executor."""
    return f"{EXECUTOR_LABEL}={label_value(executor_id)},!{DONE_LABEL}"


def task_selector(key: TaskKey) -> str:
    """Label selector matching the pod(s) of one try, whichever executor owns them."""
    return ",".join(f"{k}={v}" for k, v in sorted(task_labels(key).items()))


def worker_pod_name(node: str, gpu_indices: tuple[int, ...]) -> str:
    """Deterministic DNS-1123 name of the worker pod holding ``node``'s GPUs ``gpu_indices``.

    One name per GPU set, so a 409 on create means the set already has its pod (adopt it)
    and a restarted scheduler finds each set's pod by name as well as by label.
    """
    gpus = "-".join(str(i) for i in gpu_indices)
    suffix = _digest(f"{node}\x00{gpus}", 8)
    readable = _DNS_BAD_CHARS.sub("-", node.lower()).strip("-")
    room = _LABEL_MAX - len("fate-worker-") - len(gpus) - len(suffix) - 2
    readable = readable[: max(room, 0)].strip("-")
    parts = ["fate-worker", readable, gpus, suffix] if readable else ["fate-worker", gpus, suffix]
    return "-".join(parts)[:_LABEL_MAX].strip("-")


def worker_selector(executor_id: str | None = None) -> str:
    """Label selector of worker pods: one executor's, or (None) every executor's."""
    terms = [f"{k}={v}" for k, v in WORKER_LABELS.items()]
    if executor_id is not None:
        terms.append(f"{EXECUTOR_LABEL}={label_value(executor_id)}")
    return ",".join(terms)
