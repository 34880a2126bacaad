"""The worker-pod backend: Airflow tasks run on long-lived GPU worker pods.

``[fate] kubernetes_mode = worker-pods`` (the default). One pod per GPU set in use runs
a device worker (models and prefix KV resident, LRU, as locally) and a task agent; the
executor hands each task try to the agent of the pod on the planner's GPUs, which runs
the Task SDK process beside the device worker. `airflow_fate.launch.pool` decides when a
pod is created, reused, replaced or expired; this module acts on those decisions
through the Kubernetes API and the agents, and reports what happened as the neutral
`LaunchEvent` / `DevicesLost` messages.

Decide, act, observe, as the pod-per-stage launcher: `launch` queues the try, `poll`
creates pods (retrying 429/5xx on later polls), follows them through one label-selected
watch, asks the agents of starting and busy pods for their state, hands queued tries to
ready agents, and deletes expired pods. Invariants:

* a try is handed to at most one agent, once (the agent refuses a try it knows, so a
  lost answer cannot start it twice);
* a pod is never deleted under a running task by this launcher; when a pod dies anyway
  (deleted, evicted, OOM-killed, node lost) each try on it fails with a reason naming
  the pod and node, followed by `DevicesLost` so the planner drops that pod's state;
* after a restart `start` takes over every worker pod in the namespace (relabelling it)
  and asks its agent what it holds; `adopt` takes the tries the agents still run or
  finished meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client  # type: ignore[import-untyped,import-not-found,unused-ignore]

from airflow_fate.launch.agent.auth import Secret
from airflow_fate.launch.agent.client import AgentClient, AgentError
from airflow_fate.launch.agent.messages import AgentState, TaskSubmission, WireKey
from airflow_fate.launch.agent.outcomes import ended_tries
from airflow_fate.launch.inventory import Inventory
from airflow_fate.launch.kubernetes import naming
from airflow_fate.launch.kubernetes.agent_secret import ensure_agent_secret
from airflow_fate.launch.kubernetes.api import ApiCaller, KubernetesApiError, failure_of
from airflow_fate.launch.kubernetes.client import load_api_client
from airflow_fate.launch.kubernetes.pods import StagePodApi
from airflow_fate.launch.kubernetes.podspec import StageObjects, load_pod_template
from airflow_fate.launch.kubernetes.retry import ErrorClass, backoff_delay
from airflow_fate.launch.kubernetes.settings import GpuMode, LauncherSettings
from airflow_fate.launch.kubernetes.states import PodState, read_pod_status
from airflow_fate.launch.kubernetes.watcher import Observation, PodSnapshot, PodWatcher
from airflow_fate.launch.kubernetes.worker_podspec import (
    agent_config,
    build_worker_objects,
    worker_binding,
)
from airflow_fate.launch.pool import (
    Create,
    Reuse,
    Wait,
    WorkerPhase,
    WorkerPool,
    gpu_set,
    overlaps,
)
from airflow_fate.launch.types import (
    DevicesLost,
    EventKind,
    GpuPlacement,
    LaunchEvent,
    LaunchRequest,
    TaskEvent,
    TaskKey,
    WorkerStarted,
)

log = logging.getLogger(__name__)

Json = dict[str, Any]
IDLE_CHECK_S = 5.0
"""How often the agent of an idle ready pod is asked (its worker may have restarted)."""
SUBMIT_ATTEMPTS = 20
"""Polls on which a ready pod's agent may be unreachable before its queued try fails."""


@dataclass
class _Pod:
    """A worker pod of this launcher and how to reach its agent."""

    name: str
    placement: GpuPlacement
    objects: StageObjects | None
    """What to create; None once the API accepted it (or for a pod taken over)."""
    claim_created: bool = False
    attempts: int = 0
    not_before: float = 0.0
    last_error: str = ""
    agent: AgentClient | None = None
    ever_ready: bool = False
    restarts: int | None = None
    next_check: float = 0.0
    state: AgentState | None = None
    pending_reason: str = ""
    asked_at: float | None = None
    """When this launcher decided to create it (None for a pod taken over)."""

    @property
    def node(self) -> str:
        return self.placement.node


class WorkerPodLauncher:
    """Runs Airflow tasks on GPU worker pods (see the module docstring).

    Args:
        settings: launcher, pod and worker-pod settings (``launcher.yaml``).
        inventory: the cluster and its GPUs' UUIDs (pods pin by UUID; budgets and
            global indices come from the cluster).
        stage_timeout_s: how long a stage may run on a device worker.
        worker_idle_s: a pod with no task for this long is deleted.
        api_client_factory: makes a fresh ``ApiClient`` (one for calls, one for the
            watch); defaults to kubeconfig / in-cluster.
        clock: monotonic seconds; sleep: blocking wait between retried API calls;
        template: a parsed pod template (default: ``settings.pod.pod_template_file``).

    Clients are created in `start`, never here.
    """

    keeps_tasks_on_close = True
    """Pods and their tasks outlive `close(detach=True)`; a restarted scheduler adopts
    them. Without ``detach`` the pods are deleted."""

    def __init__(
        self,
        settings: LauncherSettings,
        inventory: Inventory,
        *,
        stage_timeout_s: float,
        worker_idle_s: float,
        api_client_factory: Callable[[], client.ApiClient] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        template: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.inventory = inventory
        self.stage_timeout_s = stage_timeout_s
        self._factory = api_client_factory or load_api_client
        self._clock = clock
        self._template = template
        self._caller = ApiCaller(settings.retry, sleep)
        self._namespace = settings.pod.namespace
        self._executor_label = naming.label_value(settings.executor_id)
        self.pool = WorkerPool(worker_idle_s)
        self._pods: dict[str, _Pod] = {}
        self._waiting: dict[TaskKey, LaunchRequest] = {}
        self._unreachable: dict[TaskKey, int] = {}
        self._cancelled: dict[TaskKey, str] = {}
        self._events: list[TaskEvent] = []
        self._k8s: StagePodApi | None = None
        self._secret: Secret | None = None
        self._watcher: PodWatcher | None = None
        self._observations: queue.SimpleQueue[Observation] = queue.SimpleQueue()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Clients, the agent key, the pods an earlier scheduler left, the watch."""
        if self._k8s is not None:
            return
        self._k8s = StagePodApi(self._factory(), self._caller, self.settings.request_timeout_s)
        if self._template is None and self.settings.pod.pod_template_file is not None:
            self._template = load_pod_template(self.settings.pod.pod_template_file)
        self._secret = ensure_agent_secret(
            self._k8s, self._namespace, self.settings.worker.secret_name
        )
        self._take_over_pods()
        if self.settings.worker.prestart:
            self._prestart()
        self._watcher = PodWatcher(
            self._factory(),
            self._namespace,
            naming.worker_selector(self.settings.executor_id),
            self._observations.put,
            watch_timeout_s=self.settings.watch_timeout_s,
            request_timeout_s=self.settings.request_timeout_s,
            retry=self.settings.retry,
        )
        self._watcher.start()

    def close(self, *, detach: bool = False, join_timeout_s: float = 5.0) -> None:
        """Stop watching; without ``detach`` also delete every worker pod."""
        if self._watcher is not None:
            self._watcher.stop(join_timeout_s)
            self._watcher = None
        if not detach and self._k8s is not None:
            for pod in list(self._pods.values()):
                self._delete(pod)
            self._pods.clear()

    def live_devices(self) -> set[int]:
        """Global GPU indices of ready pods (what they hold survived the restart)."""
        return {g for p in self._ready_pods() for g in self._global(p.placement)}

    def held_models(self) -> dict[tuple[int, ...], tuple[str, ...]]:
        """What each idle ready pod's device worker says it holds now, by global GPU set
        (a pod running a task, or not asked since its last one, is left out)."""
        out: dict[tuple[int, ...], tuple[str, ...]] = {}
        for p in self._ready_pods():
            if p.state is not None and p.state.worker.current:
                out[self._global(p.placement)] = tuple(p.state.worker.resident)
        return out

    # -- the Launcher protocol -----------------------------------------------------------

    def launch(self, request: LaunchRequest) -> None:
        """Queue the try for the pod of its GPU set; it is handed over once that pod's
        agent answers (outcomes arrive through `poll`)."""
        self.start()
        key = request.key
        if key in self._waiting or self.pool.running(key) is not None:
            log.info("%s is already launched; ignoring the duplicate request", key)
            return
        self._waiting[key] = request
        self._dispatch(key)

    def poll(self, timeout_s: float = 0.0) -> list[TaskEvent]:
        """Everything observed since the last call (see the module docstring)."""
        self.start()
        now = self._clock()
        for pod in list(self._pods.values()):
            if pod.objects is not None and pod.not_before <= now:
                self._attempt_create(pod)
        if timeout_s > 0 and not self._events:
            with contextlib.suppress(queue.Empty):
                self._handle(self._observations.get(timeout=timeout_s))
        self._drain()
        now = self._clock()
        for pod in list(self._pods.values()):
            self._check_agent(pod, now)
        for key in list(self._waiting):
            self._dispatch(key)
        self._expire(now)
        events, self._events = self._events, []
        return events

    def cancel(self, key: TaskKey) -> None:
        """Drop a queued try, or stop its task process in its pod. No event follows."""
        if self._waiting.pop(key, None) is not None:
            return
        worker = self.pool.running(key)
        if worker is None:
            return
        pod = self._pods.get(worker.name)
        if pod is not None and pod.agent is not None:
            try:
                pod.agent.cancel([key])
                self._cancelled[key] = pod.name
            except AgentError as exc:
                log.warning("cannot cancel %s in pod %s: %s", key, pod.name, exc)
        self.pool.task_ended(key, self._clock())

    def adopt(self, keys: Iterable[TaskKey]) -> list[TaskKey]:
        """Take over the tries of ``keys`` that worker pods run (or finished meanwhile).

        Each ready pod's agent is asked afresh; a try it reports is tracked on that pod
        and announced (``ADOPTED``); one that ended is reported on the next `poll`. The
        rest have no task process and the caller resets them, as Airflow does.
        """
        self.start()
        asked = list(dict.fromkeys(keys))
        wanted = {k for k in asked if not self._tracked(k)}
        for pod in self._ready_pods():
            if not wanted or pod.agent is None:
                continue
            try:
                pod.state = pod.agent.state()
            except AgentError as exc:
                log.warning("cannot ask pod %s what it runs: %s", pod.name, exc)
                continue
            for report in pod.state.tasks:
                key = report.key.task_key()
                if key in wanted:
                    wanted.discard(key)
                    self.pool.task_started(pod.name, key)
                    self._emit_for(pod, EventKind.ADOPTED, key, reason="from its worker pod")
            pod.next_check = 0.0
        return [k for k in asked if self._tracked(k)]

    # -- deciding where a try goes ------------------------------------------------------

    def _dispatch(self, key: TaskKey) -> None:
        request = self._waiting[key]
        decision = self.pool.place(gpu_set(request.placement))
        if isinstance(decision, Wait):
            return
        if isinstance(decision, Create):
            for name in decision.replaces:
                pod = self._pods.get(name)
                if pod is not None:
                    log.info("deleting worker pod %s: its GPUs join a new set", name)
                    self._delete(pod)
            self._create(request.placement)
            return
        assert isinstance(decision, Reuse)
        worker = self.pool.get(decision.name)
        pod = self._pods.get(decision.name)
        if worker is not None and pod is not None and worker.phase is WorkerPhase.READY:
            self._submit(key, pod)

    def _submit(self, key: TaskKey, pod: _Pod) -> None:
        request = self._waiting[key]
        assert pod.agent is not None
        submission = TaskSubmission(
            key=WireKey.of(key), command=list(request.command), env=dict(request.env)
        )
        try:
            started, state = pod.agent.submit(submission)
        except AgentError as exc:
            if exc.unreachable:
                tries = self._unreachable[key] = self._unreachable.get(key, 0) + 1
                if tries < SUBMIT_ATTEMPTS:
                    return  # the pod's watch will tell if it died; try again next poll
            self._waiting.pop(key, None)
            self._unreachable.pop(key, None)
            self._emit_for(
                pod,
                EventKind.FAILED,
                key,
                reason=f"worker pod {pod.name} on node {pod.node} did not take the task: {exc}",
            )
            return
        self._waiting.pop(key, None)
        self._unreachable.pop(key, None)
        if not started:
            log.info("pod %s already had %s (an answer was lost); tracking it", pod.name, key)
        pod.state = state
        self.pool.task_started(pod.name, key)
        self._emit_for(pod, EventKind.RUNNING, key, gpu_uuids=pod.placement.gpu_uuids, reason="")

    # -- pods ------------------------------------------------------------------------------

    def _create(self, placement: GpuPlacement) -> None:
        binding = worker_binding(self.inventory, placement, self.settings.worker)
        config = agent_config(placement, binding, self.settings, self.stage_timeout_s)
        try:
            objects = build_worker_objects(config, self.settings, self._template)
        except ValueError as exc:
            self._fail_waiting(placement, config.pod, f"invalid worker pod: {exc}")
            return
        pod = _Pod(config.pod, placement, objects, asked_at=self._clock())
        self._pods[pod.name] = pod
        self.pool.created(pod.name, gpu_set(placement), self._clock())
        self._attempt_create(pod)

    def _attempt_create(self, pod: _Pod) -> None:
        objects = pod.objects
        assert objects is not None
        pod.attempts += 1
        try:
            if objects.claim is not None and not pod.claim_created:
                self._api().create_claim(self._namespace, objects.claim)
                pod.claim_created = True
            body = self._api().create_pod(self._namespace, objects.pod)
        except Exception as exc:
            failure = failure_of(exc)
            if failure is None:
                raise
            if failure.error_class is ErrorClass.CONFLICT:
                self._on_conflict(pod)
                return
            pod.last_error = failure.describe()
            limit = self.settings.retry.launch_max_attempts
            if failure.error_class is ErrorClass.FATAL or pod.attempts >= limit:
                what = "refused" if failure.error_class is ErrorClass.FATAL else "kept refusing"
                self._forget_pod(pod)
                self._fail_waiting(
                    pod.placement,
                    pod.name,
                    f"Kubernetes {what} worker pod {pod.name}: {failure.describe()}",
                )
                return
            delay = backoff_delay(pod.attempts - 1, self.settings.retry, failure.retry_after_s)
            pod.not_before = self._clock() + delay
            log.warning(
                "create worker pod %s: %s; retrying in %.2fs", pod.name, failure.describe(), delay
            )
            return
        pod.objects = None
        if objects.claim is not None:
            self._api().own_claim(self._namespace, body)
        log.info(
            "created worker pod %s for %s GPUs %s",
            pod.name,
            pod.node,
            list(pod.placement.gpu_indices),
        )
        self._observe(body)

    def _on_conflict(self, pod: _Pod) -> None:
        """The pod's name is taken: take over our own worker pod, or wait for one that
        is going away."""
        try:
            existing = self._api().read_pod(self._namespace, pod.name)
        except KubernetesApiError as exc:
            pod.not_before = self._clock() + 1.0
            pod.last_error = str(exc)
            return
        if existing is None or naming.metadata(existing).get("deletionTimestamp"):
            pod.not_before = self._clock() + 1.0  # still going away: try again
            return
        log.info("worker pod %s already exists (409); taking it over", pod.name)
        pod.objects = None
        self._relabel(existing)
        self._observe(existing)

    def _take_over_pods(self) -> None:
        """Track every worker pod of the namespace (an earlier scheduler's), asking each
        ready agent what it holds and runs."""
        now = self._clock()
        for found in self._api().list_pods(self._namespace, naming.worker_selector()):
            meta = naming.metadata(found)
            placement = naming.placement_from_annotations(found)
            if meta.get("deletionTimestamp") or placement is None:
                continue
            status = read_pod_status(found, self.settings.fatal_waiting_reasons)
            pod = _Pod(meta["name"], placement, None)
            if status.state in (PodState.FAILED, PodState.SUCCEEDED):
                self._delete(pod)
                continue
            self._relabel(found)
            self._pods[pod.name] = pod
            self.pool.created(pod.name, gpu_set(placement), now)
            self._observe(found)
            self._check_agent(pod, now)
        log.info("took over %d worker pods, %d ready", len(self._pods), len(self._ready_pods()))

    def _prestart(self) -> None:
        """Start a single-GPU pod on every GPU no pod holds yet (``worker.prestart``).

        The state the planner starts from has these pods (`Hosting.prestart`), so only
        shard groups and pods that expired or were replaced start on a stage's critical
        path. A restarted scheduler keeps the pods it took over, shard groups included.
        """
        started = 0
        for g in range(len(self.inventory.cluster.gpus)):
            placement = self.inventory.placement([g])
            gpus = gpu_set(placement)
            if any(overlaps(w.gpus, gpus) for w in self.pool):
                continue
            self._create(placement)
            started += 1
        log.info("starting %d single-GPU worker pods ahead of work", started)

    def _relabel(self, pod: Json) -> None:
        meta = naming.metadata(pod)
        if (meta.get("labels") or {}).get(naming.EXECUTOR_LABEL) == self._executor_label:
            return
        patch = {"metadata": {"labels": {naming.EXECUTOR_LABEL: self._executor_label}}}
        try:
            self._api().patch_pod(self._namespace, meta["name"], patch)
        except KubernetesApiError as exc:
            log.warning("cannot take over worker pod %s: %s", meta["name"], exc)

    def _delete(self, pod: _Pod) -> None:
        """Ask for the pod's deletion (and its claim's); it leaves the pool when gone."""
        self.pool.deleting([pod.name])
        self._api().delete_pod(self._namespace, pod.name)
        if self.settings.pod.gpu_mode is GpuMode.DRA:
            self._api().delete_claim(self._namespace, pod.name)

    def _forget_pod(self, pod: _Pod) -> None:
        self._pods.pop(pod.name, None)
        self.pool.gone(pod.name)
        if self.settings.pod.gpu_mode is GpuMode.DRA:
            self._api().delete_claim(self._namespace, pod.name)

    def _expire(self, now: float) -> None:
        for name in self.pool.expired(now):
            pod = self._pods.get(name)
            if pod is not None:
                log.info("deleting worker pod %s: idle for over %g s", name, self.pool.idle_s)
                self._delete(pod)
        limit = self.settings.worker.start_timeout_s
        for name in self.pool.stuck(now, limit):
            pod = self._pods.get(name)
            if pod is None:
                continue
            why = f"did not start within {limit:g} s"
            if pod.pending_reason:
                why += f": {pod.pending_reason}"
            if pod.last_error:
                why += f" ({pod.last_error})"
            self._lost(pod, why)
            self._delete(pod)

    # -- observing pods --------------------------------------------------------------------

    def _drain(self) -> None:
        while True:
            try:
                observation = self._observations.get_nowait()
            except queue.Empty:
                return
            self._handle(observation)

    def _handle(self, observation: Observation) -> None:
        if isinstance(observation, PodSnapshot):
            listed = {naming.metadata(p).get("name") for p in observation.pods}
            for found in observation.pods:
                self._observe(found)
            for pod in list(self._pods.values()):
                if pod.objects is None and pod.name not in listed:
                    self._recheck(pod)
        elif observation.type == "DELETED":
            self._on_deleted(observation.pod)
        else:
            self._observe(observation.pod)

    def _recheck(self, pod: _Pod) -> None:
        """A pod missing from a re-list: gone, or created after the list was taken."""
        try:
            current = self._api().read_pod(self._namespace, pod.name)
        except KubernetesApiError as exc:
            log.warning("cannot check worker pod %s after a re-list: %s", pod.name, exc)
            return
        if current is None:
            self._gone(pod, "disappeared while unwatched")
        else:
            self._observe(current)

    def _observe(self, found: Json) -> None:
        meta = naming.metadata(found)
        pod = self._pods.get(meta.get("name", ""))
        if pod is None or pod.objects is not None:
            return
        worker = self.pool.get(pod.name)
        status = read_pod_status(found, self.settings.fatal_waiting_reasons)
        if meta.get("deletionTimestamp"):
            if worker is not None and worker.phase is not WorkerPhase.DELETING:
                self._lost(pod, "was deleted")  # by someone else, under its tasks
            return
        if status.state is PodState.PENDING:
            pod.pending_reason = status.reason
        elif status.state is PodState.RUNNING:
            ip = (found.get("status") or {}).get("podIP")
            if ip and (pod.agent is None or pod.agent.host != ip):
                assert self._secret is not None
                pod.agent = AgentClient(
                    ip,
                    self.settings.worker.agent_port,
                    self._secret,
                    self.settings.worker.agent_timeout_s,
                )
                pod.next_check = 0.0
        elif status.state in (PodState.FAILED, PodState.SUCCEEDED):
            why = f"failed: {status.reason}" if status.state is PodState.FAILED else "exited"
            self._lost(pod, why)
            self._delete(pod)

    def _on_deleted(self, found: Json) -> None:
        meta = naming.metadata(found)
        pod = self._pods.get(meta.get("name", ""))
        if pod is None:
            return
        if not meta.get("deletionTimestamp"):
            labels = meta.get("labels") or {}
            owner = labels.get(naming.EXECUTOR_LABEL)
            if owner != self._executor_label:  # another scheduler took it over
                worker = self.pool.gone(pod.name)
                self._pods.pop(pod.name, None)
                for key in sorted(worker.tasks if worker else (), key=str):
                    self._emit_for(pod, EventKind.RELEASED, key, reason=f"adopted by {owner}")
                return
        status = read_pod_status(found, self.settings.fatal_waiting_reasons)
        why = f"failed: {status.reason}" if status.state is PodState.FAILED else "was deleted"
        self._gone(pod, why)

    def _gone(self, pod: _Pod, why: str) -> None:
        """The pod no longer exists."""
        worker = self.pool.get(pod.name)
        if worker is not None and worker.phase is not WorkerPhase.DELETING:
            self._lost(pod, why)
        self._forget_pod(pod)

    def _lost(self, pod: _Pod, why: str) -> None:
        """The pod died under us: fail its tries, report its devices' state lost."""
        worker = self.pool.get(pod.name)
        if worker is None or worker.phase is WorkerPhase.DELETING:
            return
        self.pool.deleting([pod.name])
        reason = f"worker pod {pod.name} on node {pod.node} {why}"
        log.warning("%s", reason)
        for key in sorted(worker.tasks, key=str):
            self.pool.task_ended(key, self._clock())
            self._emit_for(pod, EventKind.FAILED, key, reason=reason)
        if pod.ever_ready:
            self._events.append(DevicesLost(pod.node, pod.placement.gpu_indices, reason))
        else:
            self._fail_waiting(pod.placement, pod.name, reason)

    # -- asking agents ---------------------------------------------------------------------

    def _check_agent(self, pod: _Pod, now: float) -> None:
        worker = self.pool.get(pod.name)
        if worker is None or pod.agent is None or worker.phase is WorkerPhase.DELETING:
            return
        if now < pod.next_check:
            return
        active = worker.phase is WorkerPhase.STARTING or worker.busy
        pod.next_check = now + (self.settings.worker.poll_interval_s if active else IDLE_CHECK_S)
        try:
            state = pod.agent.state()
        except AgentError as exc:
            if exc.status == 401:
                self._lost(pod, "refuses this scheduler's key (another agent Secret?)")
                self._delete(pod)
            elif not exc.unreachable:
                log.warning("worker pod %s: %s", pod.name, exc)
            return
        if state.pod != pod.name:
            log.warning("agent at %s is pod %s, not %s", pod.agent.address, state.pod, pod.name)
            return
        if worker.phase is WorkerPhase.STARTING:
            self.pool.ready(pod.name, now)
            pod.ever_ready = True
            if pod.asked_at is not None:
                seconds = round(now - pod.asked_at, 3)
                self._events.append(WorkerStarted(pod.node, pod.placement.gpu_indices, seconds))
            log.info(
                "worker pod %s is ready (%s GPUs %s)",
                pod.name,
                pod.node,
                list(pod.placement.gpu_indices),
            )
        restarted = pod.restarts is not None and state.worker.restarts > pod.restarts
        pod.restarts = state.worker.restarts
        pod.state = state
        self._report_tasks(pod, state, now)
        if restarted:
            self._events.append(
                DevicesLost(
                    pod.node,
                    pod.placement.gpu_indices,
                    f"the device worker of pod {pod.name} restarted",
                )
            )

    def _report_tasks(self, pod: _Pod, state: AgentState, now: float) -> None:
        worker = self.pool.get(pod.name)
        assert worker is not None
        consumed: list[TaskKey] = []
        where = f"worker pod {pod.name} on node {pod.node}"
        for outcome in ended_tries(worker.tasks, state, where):
            self.pool.task_ended(outcome.key, now)
            if outcome.reported:
                consumed.append(outcome.key)
            self._emit_for(pod, outcome.kind, outcome.key, reason=outcome.reason)
        for key, name in list(self._cancelled.items()):
            report = state.task(key) if name == pod.name else None
            if report is not None and not report.running:
                consumed.append(key)
                del self._cancelled[key]
        if consumed and pod.agent is not None:
            with contextlib.suppress(AgentError):
                pod.agent.forget(consumed)

    # -- helpers ---------------------------------------------------------------------------

    def _api(self) -> StagePodApi:
        if self._k8s is None:
            raise RuntimeError("WorkerPodLauncher.start() was not called")
        return self._k8s

    def _tracked(self, key: TaskKey) -> bool:
        return key in self._waiting or self.pool.running(key) is not None

    def _ready_pods(self) -> list[_Pod]:
        out = []
        for worker in self.pool:
            pod = self._pods.get(worker.name)
            if pod is not None and worker.phase is WorkerPhase.READY:
                out.append(pod)
        return out

    def _global(self, placement: GpuPlacement) -> tuple[int, ...]:
        cluster = self.inventory.cluster
        node = next(i for i, n in enumerate(cluster.nodes) if n.name == placement.node)
        return tuple(cluster.node_gpus[node][i] for i in placement.gpu_indices)

    def _fail_waiting(self, placement: GpuPlacement, pod_name: str, reason: str) -> None:
        """Fail every queued try for ``placement``'s GPU set (its pod cannot start)."""
        gpus = gpu_set(placement)
        for key, request in list(self._waiting.items()):
            if gpu_set(request.placement) == gpus:
                del self._waiting[key]
                self._emit(
                    LaunchEvent(
                        EventKind.FAILED,
                        key,
                        pod_name,
                        self._namespace,
                        reason=reason,
                        node=placement.node,
                    )
                )

    def _emit_for(
        self,
        pod: _Pod,
        kind: EventKind,
        key: TaskKey,
        *,
        reason: str = "",
        gpu_uuids: tuple[str, ...] = (),
    ) -> None:
        self._emit(
            LaunchEvent(
                kind,
                key,
                pod.name,
                self._namespace,
                reason=reason,
                node=pod.node,
                gpu_uuids=gpu_uuids or pod.placement.gpu_uuids,
            )
        )

    def _emit(self, event: LaunchEvent) -> None:
        log.info(
            "%s %s (worker pod %s) %s", event.kind.value, event.key, event.pod_name, event.reason
        )
        self._events.append(event)
