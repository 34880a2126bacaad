"""The Kubernetes launcher: stage pods created, watched, cleaned up and adopted.

Decide, act, observe: the executor calls `launch` with the planner's choice, and `poll`
returns what happened since. Nothing blocks the scheduler loop for long: pod creation
refused with 429/5xx is retried on later polls (honouring ``Retry-After``) instead of
sleeping; other calls retry a few times with an injectable ``sleep``.

Invariants:

* One pod per task-instance try. Pod names are deterministic, so a 409 on create means
  the pod exists (an earlier attempt whose response was lost, or a previous scheduler);
  the launcher adopts it and never creates a second.
* A pod the launcher tracks ends in exactly one of ``SUCCEEDED``, ``FAILED`` or
  ``RELEASED`` (another executor adopted it), or is cancelled (no event).
* After a scheduler restart, `adopt` takes over the previous executor's pods by
  rewriting their ``airflow-fate/executor`` label; pods that finished meanwhile report
  their final state at once.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client  # type: ignore[import-untyped,import-not-found,unused-ignore]

from airflow_fate.launch.kubernetes import naming
from airflow_fate.launch.kubernetes.api import ApiCaller, KubernetesApiError, failure_of
from airflow_fate.launch.kubernetes.client import load_api_client
from airflow_fate.launch.kubernetes.placement import parse_marker
from airflow_fate.launch.kubernetes.pods import StagePodApi
from airflow_fate.launch.kubernetes.podspec import (
    StageObjects,
    build_stage_objects,
    load_pod_template,
)
from airflow_fate.launch.kubernetes.retry import ErrorClass, backoff_delay
from airflow_fate.launch.kubernetes.settings import GpuMode, LauncherSettings
from airflow_fate.launch.kubernetes.states import PodState, read_pod_status
from airflow_fate.launch.kubernetes.watcher import Observation, PodSnapshot, PodWatcher
from airflow_fate.launch.types import (
    EventKind,
    GpuPlacement,
    LaunchEvent,
    LaunchRequest,
    TaskEvent,
    TaskKey,
)

log = logging.getLogger(__name__)

Json = dict[str, Any]
_PLACEMENT_LOG_TRIES = 30


@dataclass
class _Tracked:
    """A pod this launcher owns and has not yet seen finish."""

    key: TaskKey
    namespace: str
    pod_name: str
    mode: GpuMode
    placement: GpuPlacement | None
    has_claim: bool
    running_reported: bool = False
    placed: bool = False
    placement_tries: int = 0
    unschedulable_since: float | None = None
    unschedulable_reason: str = ""


@dataclass
class _PendingLaunch:
    """A launch waiting for its next creation attempt."""

    request: LaunchRequest
    objects: StageObjects
    namespace: str
    attempts: int = 0
    not_before: float = 0.0
    claim_created: bool = False
    last_error: str = field(default="")


class KubernetesLauncher:
    """Launch stages as pods pinned to the planner's node and GPUs.

    Args:
        settings: launcher and pod settings.
        api_client_factory: makes a fresh ``ApiClient`` (one for the launcher, one per
            watch thread). Defaults to a kubeconfig / in-cluster client.
        clock: monotonic seconds (injected in tests).
        sleep: blocking wait used between retries of calls other than pod creation.
        template: a parsed pod template; defaults to ``settings.pod.pod_template_file``.

    Clients are created in `start`, not here: Airflow builds executors it never starts.
    """

    keeps_tasks_on_close = True
    """Pods outlive `close` (a restarted scheduler adopts them); stopping them is `cancel`."""

    def __init__(
        self,
        settings: LauncherSettings,
        *,
        api_client_factory: Callable[[], client.ApiClient] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        template: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self._factory = api_client_factory or load_api_client
        self._clock = clock
        self._sleep = sleep
        self._template = template
        self._api: ApiCaller = ApiCaller(settings.retry, sleep)
        self._pods: StagePodApi | None = None
        self._watchers: dict[str, PodWatcher] = {}
        self._observations: queue.SimpleQueue[Observation] = queue.SimpleQueue()
        self._tracked: dict[TaskKey, _Tracked] = {}
        self._pending: dict[TaskKey, _PendingLaunch] = {}
        self._events: list[TaskEvent] = []
        self._executor_label = naming.label_value(settings.executor_id)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Create the API clients and load the pod template. Idempotent."""
        if self._pods is not None:
            return
        self._pods = StagePodApi(self._factory(), self._api, self.settings.request_timeout_s)
        if self._template is None and self.settings.pod.pod_template_file is not None:
            self._template = load_pod_template(self.settings.pod.pod_template_file)

    def close(self, *, detach: bool = False, join_timeout_s: float = 5.0) -> None:
        """Stop every watch thread. Pods keep running; a later `adopt` takes them over.

        ``detach`` changes nothing here: pods always outlive the launcher.
        """
        for watcher in self._watchers.values():
            watcher.stop(join_timeout_s)
        self._watchers.clear()

    def __enter__(self) -> KubernetesLauncher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def tracked(self) -> frozenset[TaskKey]:
        """Tries with a live pod (or a launch still being attempted)."""
        return frozenset(self._tracked) | frozenset(self._pending)

    def watcher(self, namespace: str) -> PodWatcher | None:
        """The watch of ``namespace``, if one runs (for health checks and tests)."""
        return self._watchers.get(namespace)

    # -- the Launcher protocol -----------------------------------------------------------

    def launch(self, request: LaunchRequest) -> None:
        """Create the stage's pod (and DRA claim). Outcomes arrive through `poll`.

        A request for a try that is already tracked is ignored. A request that cannot
        become a valid pod (e.g. a placement without UUIDs in ``dra`` mode) fails at once.
        """
        self.start()
        key = request.key
        if key in self._tracked or key in self._pending:
            log.info("%s is already launched; ignoring the duplicate request", key)
            return
        namespace = request.namespace or self.settings.pod.namespace
        try:
            objects = build_stage_objects(
                request, self.settings.pod, self.settings.executor_id, self._template
            )
        except ValueError as exc:
            self._emit(EventKind.FAILED, key, "", namespace, reason=f"invalid pod: {exc}")
            return
        self._ensure_watch(namespace)
        pending = _PendingLaunch(request=request, objects=objects, namespace=namespace)
        self._pending[key] = pending
        self._attempt(pending)

    def poll(self, timeout_s: float = 0.0) -> list[TaskEvent]:
        """Everything observed since the last call, in order.

        Args:
            timeout_s: when nothing has happened yet, wait up to this long for the
                first watch observation (0: never block, as in the scheduler loop).
        """
        self.start()
        now = self._clock()
        for pending in list(self._pending.values()):
            if pending.not_before <= now:
                self._attempt(pending)
        if timeout_s > 0 and not self._events:
            with contextlib.suppress(queue.Empty):
                self._handle(self._observations.get(timeout=timeout_s))
        self._drain()
        self._check_unschedulable()
        self._check_placements()
        events, self._events = self._events, []
        return events

    def cancel(self, key: TaskKey) -> None:
        """Stop a try: drop a pending launch, or delete its pod. No event follows."""
        self.start()
        pending = self._pending.pop(key, None)
        if pending is not None:
            if pending.claim_created:
                self._pod_api().delete_claim(pending.namespace, naming.pod_name(key))
            return
        tracked = self._tracked.pop(key, None)
        if tracked is None:
            return
        self._delete_pod(tracked)

    def live_devices(self) -> set[int]:
        """None: a pod per stage leaves nothing resident on its GPUs."""
        return set()

    def held_models(self) -> dict[tuple[int, ...], tuple[str, ...]]:
        """Nothing: a pod per stage holds nothing once it ends."""
        return {}

    def adopt(self, keys: Iterable[TaskKey], namespace: str | None = None) -> list[TaskKey]:
        """Take over the pods of ``keys`` launched by an earlier executor.

        One list call per namespace finds every airflow-fate pod; each pod whose exact
        identity (annotations) matches a key is relabelled to this executor and tracked,
        an ``ADOPTED`` event is emitted, and its current state is reported at once (a
        pod that finished while the scheduler was down yields its final event).

        Args:
            keys: the tries to take over.
            namespace: where their pods live; defaults to the configured namespace.

        Returns:
            the keys now tracked, in order (as the `Launcher` protocol asks). Keys
            already tracked count as adopted; the rest have no live pod and the caller
            should reset them (as Airflow does with tasks it cannot adopt).
        """
        self.start()
        ns = namespace or self.settings.pod.namespace
        asked = list(dict.fromkeys(keys))
        wanted = {k for k in asked if k not in self._tracked and k not in self._pending}
        if not wanted:
            return [k for k in asked if k in self.tracked]
        self._ensure_watch(ns)
        pods = self._pod_api().list_pods(
            ns, ",".join(f"{k}={v}" for k, v in naming.MANAGED_BY.items())
        )
        found: dict[TaskKey, Json] = {}
        for pod in pods:
            meta = naming.metadata(pod)
            key = naming.key_from_annotations(meta.get("annotations"))
            if key in wanted and not meta.get("deletionTimestamp"):
                found[key] = pod
        adopted = {
            key
            for key, pod in sorted(found.items(), key=lambda kv: str(kv[0]))
            if self._take_over(key, pod, announce=True)
        }
        return [k for k in asked if k in adopted or (k not in wanted and k in self.tracked)]

    # -- launching -----------------------------------------------------------------------

    def _attempt(self, pending: _PendingLaunch) -> None:
        key = pending.request.key
        pending.attempts += 1
        pod = pending.objects.pod
        name = naming.metadata(pod)["name"]
        try:
            if pending.objects.claim is not None and not pending.claim_created:
                self._pod_api().create_claim(pending.namespace, pending.objects.claim)
                pending.claim_created = True
            body = self._pod_api().create_pod(pending.namespace, pod)
        except Exception as exc:
            failure = failure_of(exc)
            if failure is None:
                raise
            if failure.error_class is ErrorClass.CONFLICT:
                self._pending.pop(key, None)
                self._on_conflict(pending)
                return
            if failure.error_class is ErrorClass.FATAL:
                self._pending.pop(key, None)
                refused = "pod"
                if pending.claim_created:
                    self._pod_api().delete_claim(pending.namespace, name)
                elif pending.objects.claim is not None:
                    refused = "GPU resource claim"
                self._emit(
                    EventKind.FAILED,
                    key,
                    name,
                    pending.namespace,
                    reason=f"Kubernetes refused the {refused}: {failure.describe()}",
                )
                return
            pending.last_error = failure.describe()
            if pending.attempts >= self.settings.retry.launch_max_attempts:
                self._pending.pop(key, None)
                self._emit(
                    EventKind.FAILED,
                    key,
                    name,
                    pending.namespace,
                    reason=f"gave up creating the pod after {pending.attempts} attempts: "
                    f"{pending.last_error}",
                )
                return
            delay = backoff_delay(pending.attempts - 1, self.settings.retry, failure.retry_after_s)
            pending.not_before = self._clock() + delay
            log.warning("create pod %s: %s; retrying in %.2fs", name, failure.describe(), delay)
            return
        self._pending.pop(key, None)
        tracked = self._track(key, pending.namespace, body, pending.request.placement)
        if tracked.has_claim:
            self._pod_api().own_claim(pending.namespace, body)
        self._observe(body)

    def _on_conflict(self, pending: _PendingLaunch) -> None:
        """The pod already exists: adopt it if it is this try's, never create another."""
        key = pending.request.key
        name = naming.metadata(pending.objects.pod)["name"]
        try:
            existing = self._pod_api().read_pod(pending.namespace, name)
        except KubernetesApiError as exc:
            self._emit(EventKind.FAILED, key, name, pending.namespace, reason=str(exc))
            return
        if existing is None:
            # Deleted between the 409 and the read: try again on the next poll.
            pending.not_before = self._clock()
            self._pending[key] = pending
            return
        found = naming.key_from_annotations(naming.metadata(existing).get("annotations"))
        if found != key:
            self._emit(
                EventKind.FAILED,
                key,
                name,
                pending.namespace,
                reason=f"pod {name} exists but belongs to {found}; refusing to replace it",
            )
            return
        log.info("pod %s already exists (409); adopting it instead of creating another", name)
        self._take_over(key, existing)

    def _take_over(self, key: TaskKey, pod: Json, *, announce: bool = False) -> bool:
        """Track an existing pod of ``key``, relabelling it to this executor if needed."""
        meta = naming.metadata(pod)
        namespace = meta["namespace"]
        labels = meta.get("labels") or {}
        owner = labels.get(naming.EXECUTOR_LABEL)
        if owner != self._executor_label or naming.DONE_LABEL in labels:
            patch = {"metadata": {"labels": {naming.EXECUTOR_LABEL: self._executor_label}}}
            try:
                pod = self._pod_api().patch_pod(namespace, meta["name"], patch)
            except KubernetesApiError as exc:
                self._emit(EventKind.FAILED, key, meta["name"], namespace, reason=str(exc))
                return False
        self._ensure_watch(namespace)
        tracked = self._track(key, namespace, pod, naming.placement_from_annotations(pod))
        if announce or owner != self._executor_label:
            self._emit(
                EventKind.ADOPTED,
                key,
                tracked.pod_name,
                namespace,
                reason=f"from executor {owner}",
                node=tracked.placement.node if tracked.placement else None,
                gpu_uuids=self._known_uuids(tracked),
            )
        self._observe(pod)
        return True

    def _track(
        self, key: TaskKey, namespace: str, pod: Json, placement: GpuPlacement | None
    ) -> _Tracked:
        meta = naming.metadata(pod)
        annotations = meta.get("annotations") or {}
        mode = GpuMode(annotations.get(naming.GPU_MODE_ANNOTATION, self.settings.pod.gpu_mode))
        tracked = _Tracked(
            key=key,
            namespace=namespace,
            pod_name=meta["name"],
            mode=mode,
            placement=placement,
            has_claim=mode is GpuMode.DRA,
        )
        self._tracked[key] = tracked
        return tracked

    # -- observing -----------------------------------------------------------------------

    def _ensure_watch(self, namespace: str) -> None:
        if namespace in self._watchers:
            return
        watcher = PodWatcher(
            self._factory(),
            namespace,
            naming.executor_selector(self.settings.executor_id),
            self._observations.put,
            watch_timeout_s=self.settings.watch_timeout_s,
            request_timeout_s=self.settings.request_timeout_s,
            retry=self.settings.retry,
        )
        self._watchers[namespace] = watcher
        watcher.start()

    def _drain(self) -> None:
        while True:
            try:
                observation = self._observations.get_nowait()
            except queue.Empty:
                return
            self._handle(observation)

    def _handle(self, observation: Observation) -> None:
        if isinstance(observation, PodSnapshot):
            self._reconcile(observation)
        elif observation.type == "DELETED":
            self._on_deleted(observation.pod)
        else:
            self._observe(observation.pod)

    def _reconcile(self, snapshot: PodSnapshot) -> None:
        """After a (re-)list: report every listed pod, and resolve tracked pods not listed."""
        listed = set()
        for pod in snapshot.pods:
            listed.add(naming.metadata(pod).get("name"))
            self._observe(pod)
        for tracked in list(self._tracked.values()):
            if tracked.namespace != snapshot.namespace or tracked.pod_name in listed:
                continue
            try:
                current = self._pod_api().read_pod(tracked.namespace, tracked.pod_name)
            except KubernetesApiError as exc:
                log.warning("cannot check pod %s after a re-list: %s", tracked.pod_name, exc)
                continue
            if current is None:
                self._tracked.pop(tracked.key, None)
                self._emit_for(tracked, EventKind.FAILED, reason="pod disappeared while unwatched")
            elif self._still_ours(current):
                self._observe(current)  # created after the list was taken
            else:
                self._on_deleted(current)

    def _tracked_for(self, pod: Json) -> _Tracked | None:
        meta = naming.metadata(pod)
        key = naming.key_from_annotations(meta.get("annotations"))
        if key is None:
            return None
        tracked = self._tracked.get(key)
        if tracked is None or tracked.pod_name != meta.get("name"):
            return None
        return tracked

    def _observe(self, pod: Json) -> None:
        tracked = self._tracked_for(pod)
        if tracked is None:
            return
        status = read_pod_status(pod, self.settings.fatal_waiting_reasons)
        if status.state is PodState.PENDING:
            if status.unschedulable:
                if tracked.unschedulable_since is None:
                    tracked.unschedulable_since = self._clock()
                tracked.unschedulable_reason = status.reason
            else:
                tracked.unschedulable_since = None
            return
        tracked.unschedulable_since = None
        if status.state is PodState.RUNNING:
            self._report_running(tracked, status.node)
            if tracked.mode is GpuMode.DEVICE_PLUGIN:
                self._read_placement(tracked)
        elif status.state is PodState.SUCCEEDED:
            if tracked.mode is GpuMode.DEVICE_PLUGIN and not tracked.placed:
                self._read_placement(tracked)
            self._finish(tracked, EventKind.SUCCEEDED, "")
        elif status.state is PodState.FAILED:
            self._finish(tracked, EventKind.FAILED, status.reason)

    def _on_deleted(self, pod: Json) -> None:
        tracked = self._tracked_for(pod)
        if tracked is None:
            return
        meta = naming.metadata(pod)
        if not meta.get("deletionTimestamp"):
            if self._still_ours(pod):
                return  # still ours and live: a stale event; the watch will catch up
            owner = (meta.get("labels") or {}).get(naming.EXECUTOR_LABEL)
            self._tracked.pop(tracked.key, None)
            self._emit_for(tracked, EventKind.RELEASED, reason=f"adopted by executor {owner}")
            return
        status = read_pod_status(pod, self.settings.fatal_waiting_reasons)
        if status.state is PodState.SUCCEEDED:
            self._finish(tracked, EventKind.SUCCEEDED, "")
        elif status.state is PodState.FAILED:
            self._finish(tracked, EventKind.FAILED, status.reason)
        else:
            self._tracked.pop(tracked.key, None)
            self._emit_for(tracked, EventKind.FAILED, reason="pod was deleted before it completed")
            if tracked.has_claim:
                self._pod_api().delete_claim(tracked.namespace, tracked.pod_name)

    def _still_ours(self, pod: Json) -> bool:
        meta = naming.metadata(pod)
        labels = meta.get("labels") or {}
        return (
            not meta.get("deletionTimestamp")
            and labels.get(naming.EXECUTOR_LABEL) == self._executor_label
            and naming.DONE_LABEL not in labels
        )

    def _report_running(self, tracked: _Tracked, node: str | None) -> None:
        if tracked.running_reported:
            return
        tracked.running_reported = True
        self._emit_for(
            tracked,
            EventKind.RUNNING,
            node=node or (tracked.placement.node if tracked.placement else None),
            gpu_uuids=self._known_uuids(tracked),
        )

    def _known_uuids(self, tracked: _Tracked) -> tuple[str, ...]:
        if tracked.mode is GpuMode.DEVICE_PLUGIN or tracked.placement is None:
            return ()
        return tracked.placement.gpu_uuids

    def _read_placement(self, tracked: _Tracked) -> None:
        """Device-plugin mode: read the stage's ``FATE-PLACEMENT`` log line."""
        if tracked.placed or tracked.placement_tries >= _PLACEMENT_LOG_TRIES:
            return
        tracked.placement_tries += 1
        try:
            text = self._pod_api().read_log(
                tracked.namespace, tracked.pod_name, self.settings.placement_log_bytes
            )
        except KubernetesApiError as exc:
            log.info("placement of %s not readable yet: %s", tracked.pod_name, exc)
            return
        uuids = parse_marker(text)
        if uuids is None:
            return
        tracked.placed = True
        if not uuids:
            log.warning("pod %s reported no GPU UUIDs; placement unknown", tracked.pod_name)
            return
        self._emit_for(
            tracked,
            EventKind.PLACED,
            node=tracked.placement.node if tracked.placement else None,
            gpu_uuids=uuids,
        )

    def _check_placements(self) -> None:
        for tracked in list(self._tracked.values()):
            if tracked.mode is GpuMode.DEVICE_PLUGIN and tracked.running_reported:
                self._read_placement(tracked)

    def _check_unschedulable(self) -> None:
        limit = self.settings.unschedulable_timeout_s
        if limit is None:
            return
        now = self._clock()
        for tracked in list(self._tracked.values()):
            since = tracked.unschedulable_since
            if since is None or now - since < limit:
                continue
            node = tracked.placement.node if tracked.placement else "?"
            reason = (
                f"unschedulable on node {node} for {now - since:.0f}s: "
                f"{tracked.unschedulable_reason}"
            )
            self._finish(tracked, EventKind.FAILED, reason, force_delete=True)

    # -- finishing -----------------------------------------------------------------------

    def _finish(
        self, tracked: _Tracked, kind: EventKind, reason: str, *, force_delete: bool = False
    ) -> None:
        if self._tracked.pop(tracked.key, None) is None:
            return
        self._emit_for(tracked, kind, reason=reason)
        if force_delete or self.settings.on_finish == "delete":
            self._delete_pod(tracked)
        else:
            self._label_done(tracked, kind)

    def _delete_pod(self, tracked: _Tracked) -> None:
        self._pod_api().delete_pod(tracked.namespace, tracked.pod_name)
        if tracked.has_claim:
            self._pod_api().delete_claim(tracked.namespace, tracked.pod_name)

    def _label_done(self, tracked: _Tracked, kind: EventKind) -> None:
        patch = {
            "metadata": {
                "labels": {naming.DONE_LABEL: "true"},
                "annotations": {naming.FINISHED_ANNOTATION: kind.value},
            }
        }
        try:
            self._pod_api().patch_pod(tracked.namespace, tracked.pod_name, patch)
        except KubernetesApiError as exc:
            if exc.status != 404:
                log.warning("%s", exc)

    # -- API -----------------------------------------------------------------------------

    def _pod_api(self) -> StagePodApi:
        if self._pods is None:
            raise RuntimeError("KubernetesLauncher.start() was not called")
        return self._pods

    # -- events --------------------------------------------------------------------------

    def _emit(
        self,
        kind: EventKind,
        key: TaskKey,
        pod_name: str,
        namespace: str,
        *,
        reason: str = "",
        node: str | None = None,
        gpu_uuids: tuple[str, ...] = (),
    ) -> None:
        event = LaunchEvent(kind, key, pod_name, namespace, reason, node, gpu_uuids)
        log.info("%s %s (pod %s) %s", kind.value, key, pod_name, reason)
        self._events.append(event)

    def _emit_for(
        self,
        tracked: _Tracked,
        kind: EventKind,
        *,
        reason: str = "",
        node: str | None = None,
        gpu_uuids: tuple[str, ...] = (),
    ) -> None:
        if node is None and tracked.placement is not None:
            node = tracked.placement.node
        self._emit(
            kind,
            tracked.key,
            tracked.pod_name,
            tracked.namespace,
            reason=reason,
            node=node,
            gpu_uuids=gpu_uuids,
        )
