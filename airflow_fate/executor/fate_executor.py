"""`FateExecutor`: Airflow's executor interface over the FATE planner.

Queued task instances become the planning frontier instead of launching FIFO. Each
heartbeat (`sync`): launcher events go into the planner's `ClusterState` (a finished
try's outcome is read from the database, not from its exit code); queued tasks with
``executor_config["fate"]`` are offered to the `FrontierPlanner`, whose DAG runs come
with their unqueued stages from the serialized DAG (the look-ahead); the configured
policy places what it wants to place; those tasks launch on the chosen GPUs and their
placement (with its "why here") is stored in ``fate_placement``. A task the planner
defers stays queued; its workload token is re-minted when it finally launches (tokens
live ``[scheduler] task_queued_timeout``). Tasks without stage metadata run on CPU slots.

Everything heavy is built in `start`: ``__init__`` must stay cheap, because the API
server instantiates executors just to read task logs.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.executors.base_executor import BaseExecutor
from airflow.executors.workloads import ExecuteTask
from sqlalchemy.exc import SQLAlchemyError

from airflow_fate.domain.plan import DecisionRecord
from airflow_fate.executor import airflow_db
from airflow_fate.executor.frontier import Placement
from airflow_fate.executor.held_writes import HeldWrites
from airflow_fate.executor.layout import RunLayout, build_layout, stage_problem
from airflow_fate.executor.lease import PlannerLease
from airflow_fate.executor.restore import Restorer, prefix_rows, residency_rows
from airflow_fate.executor.settings import load_settings
from airflow_fate.executor.stats import AirflowMetrics, ExecutorStats
from airflow_fate.executor.store import LAUNCHED, PlacementRow, utcnow
from airflow_fate.launch.types import (
    DevicesLost,
    EventKind,
    LaunchRequest,
    TaskEvent,
    TaskKey,
    WorkerStarted,
    airflow_task_command,
)
from airflow_fate.operators.metadata import MetadataError, StageMetadata, read_metadata

if TYPE_CHECKING:
    from airflow.executors.workloads import ExecutorWorkload
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancekey import TaskInstanceKey

    from airflow_fate.executor.runtime import FateRuntime

CPU_POLICY = "cpu-slot"
"""The ``policy`` of ``fate_placement`` rows of tasks without stage metadata."""

RECONCILE_EVERY_S = 10.0
"""How often placements nobody tracks are closed from the database's task states."""

RECONCILE_RETRY_S = 5.0
"""The soonest a reconcile the database refused is tried again."""

FINISHED_OK = {"success", "skipped", "deferred", "up_for_reschedule"}
"""Database states after which the process's end is reported as a success."""


@dataclass
class _Queued:
    """A queued workload the executor has looked at."""

    workload: ExecuteTask
    kind: str  # "stage" | "cpu"
    metadata: StageMetadata | None = None


@dataclass(frozen=True, slots=True)
class _Ended:
    """A try whose process ended and whose outcome is still to be read from Airflow's
    database (it waits there while the database is unreachable)."""

    code: int | None
    reason: str
    run_s: float


@dataclass(frozen=True, slots=True)
class _Launched:
    """A launched try: monotonic launch time, wall-clock start, and where it runs."""

    at: float
    start: datetime
    where: str


class PlannerLeaseLostError(RuntimeError):
    """This executor's planner lease ended and another executor may hold it now."""


def task_key(ti_key: TaskInstanceKey) -> TaskKey:
    return TaskKey(
        ti_key.dag_id, ti_key.task_id, ti_key.run_id, ti_key.try_number, ti_key.map_index
    )


class FateExecutor(BaseExecutor):
    """Places LLM stages with FATE; see the module docstring."""

    supports_ad_hoc_ti_run: bool = True
    serve_logs: bool = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rt: FateRuntime | None = None
        self._queued: dict[TaskKey, _Queued] = {}
        self._cpu_queue: deque[TaskKey] = deque()
        self._ti_keys: dict[TaskKey, TaskInstanceKey] = {}
        self._launch: dict[TaskKey, _Launched] = {}
        self._settled: dict[TaskKey, airflow_db.Outcome] = {}
        self._unread: dict[TaskKey, _Ended] = {}
        self._airflow_db_down_since: float | None = None
        self._restorer: Restorer | None = None
        self._stats: ExecutorStats | None = None
        self._t0 = time.monotonic()
        self._next_reconcile = 0.0
        self._warned_token = False
        self._writes = HeldWrites(self.log)
        self._lease: PlannerLease | None = None
        self._standby_since: float | None = None
        self._fenced = False
        self.overhead_s = 0.0
        self.launched = 0

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Plan the GPUs, or stand by while another scheduler's executor holds the lease."""
        url = self.conf.get("database", "sql_alchemy_conn") or ""
        if PlannerLease.needed(url):
            self._lease = PlannerLease(url)
            if not self._lease.try_acquire():
                self._standby_since = time.monotonic()
                self.log.info(
                    "FATE executor is a standby: another scheduler's FATE executor holds the "
                    "planner lease and plans the GPUs; this one takes over when it goes"
                )
                return
        self._activate(url)

    def _activate(self, url: str) -> None:
        """Build the planner, store and launchers and restore their state from the store."""
        from airflow.configuration import AIRFLOW_HOME

        from airflow_fate.executor.runtime import build_runtime  # OR-Tools, engines: here

        settings = load_settings(lambda s, k: self.conf.get(s, k, fallback=None))
        rt = build_runtime(settings, url, Path(AIRFLOW_HOME))
        rt.store.ensure_schema()
        rt.launcher.start()
        self._rt = rt
        self._stats = ExecutorStats(AirflowMetrics(), rt.planner.policy_name)
        self._t0 = time.monotonic()
        self._restorer = Restorer(rt, self._layout)
        live = rt.launcher.live_devices()
        restored = self._restorer.residency(live, rt.launcher.held_models())
        running = self._take_over_open_tries(self._restorer)
        closed = self._restorer.close_finished_rows(tracked=self._launch)
        self.log.info(
            "FATE executor started: policy %s, %d GPUs on %d nodes, launcher %s, run dir %s; "
            "restored %d resident models on live devices %s, took over %d running tries, "
            "closed %d finished placements",
            rt.planner.policy_name,
            len(rt.cluster.gpus),
            len(rt.cluster.nodes),
            settings.launcher,
            rt.run_dir,
            restored,
            sorted(live),
            running,
            closed,
        )

    def _check_lease(self) -> bool:
        """Whether this executor may plan now: take over as a standby, fence when lost."""
        lease = self._lease
        if lease is None:
            return self._rt is not None
        if self._rt is None:
            if self._standby_since is None or not lease.try_acquire():
                return False
            self.log.warning(
                "FATE executor takes over planning after %.1f s as a standby (the active "
                "executor's scheduler stopped or lost its database session)",
                time.monotonic() - self._standby_since,
            )
            self._standby_since = None
            self._activate(self.conf.get("database", "sql_alchemy_conn") or "")
            return True
        if lease.held() or lease.try_acquire():
            return True
        self._fenced = True
        raise PlannerLeaseLostError(
            "FATE executor lost its planner lease (its database session ended) and cannot "
            "take it back: another scheduler's executor may be planning the GPUs, so this "
            "scheduler stops; its running tasks are left for the active one to adopt"
        )

    @property
    def slots_available(self) -> int:
        """No slots while a standby, so this scheduler queues no work to it."""
        if self._rt is None:
            return 0
        slots: int = super().slots_available
        return slots

    def end(self) -> None:
        """Stop: leave running tasks for the next scheduler, or let them end and stop them.

        With ``detach_on_end`` (the default) running tasks and device workers keep going
        and the next scheduler adopts them. Otherwise running tasks get ``end_wait_s`` to
        finish (their outcomes are recorded) before every process is stopped.
        """
        rt = self._rt
        if rt is None or self._fenced:
            self._release(detach=True)
            return
        self.sync()
        if rt.settings.detach_on_end:
            self.log.info("FATE executor: leaving %d running tasks for adoption", len(self._launch))
            rt.launcher.close(detach=True)
            rt.cpu.detach_all()
        else:
            deadline = time.monotonic() + rt.settings.end_wait_s
            while self._launch and time.monotonic() < deadline:
                time.sleep(0.2)
                self._collect()
            self.terminate()
        self._write_metrics()
        if self._writes.held or self._unread:
            self.log.error(
                "FATE executor stopping with %d store writes the database never accepted and "
                "%d ended tries whose outcome it could not read; the next scheduler closes "
                "their placements from Airflow's task states",
                self._writes.held,
                len(self._unread),
            )
        rt.store.engine.dispose()
        rt.airflow_engine.dispose()
        if self._lease is not None:
            self._lease.release()

    def _release(self, *, detach: bool) -> None:
        """Stop as a standby or a fenced executor: leave every process, give the lease up."""
        rt = self._rt
        if rt is not None and detach:
            rt.launcher.close(detach=True)
            rt.cpu.detach_all()
        if self._lease is not None:
            self._lease.release()

    def terminate(self) -> None:
        rt = self._rt
        if rt is None or self._fenced:
            self._release(detach=True)
            return
        if rt.launcher.keeps_tasks_on_close:  # pods outlive close: stop them one by one
            for key in list(self._launch):
                rt.launcher.cancel(key)
        rt.launcher.close()
        rt.cpu.stop_all()

    # -- Airflow's interface ---------------------------------------------------------

    def _process_workloads(self, workloads: Sequence[ExecutorWorkload]) -> None:
        if self._rt is None:  # a standby: they wait in queued_tasks for a take-over
            return
        t0 = time.perf_counter()
        for w in workloads:
            if isinstance(w, ExecuteTask):
                self._register(w)
        self.overhead_s += time.perf_counter() - t0

    def sync(self) -> None:
        if self._fenced or not self._check_lease():
            return
        rt = self._rt
        assert rt is not None
        t0 = time.perf_counter()
        for w in list(self.queued_tasks.values()):
            self._register(w)
        self._writes.flush()
        self._collect()
        self._read_outcomes()
        now = self._now()
        if (
            now >= self._next_reconcile
            and self._restorer is not None
            and not self._writes.held
            and not self._unread
        ):
            self._next_reconcile = now + RECONCILE_EVERY_S
            self._reconcile(self._restorer)
        try:
            placements = rt.planner.decide(now)
        except Exception:
            self.log.exception("FATE planner failed; queued stages stay queued")
            placements = []
        for p in placements:
            self._launch_stage(p)
        self._launch_cpu()
        if self._stats is not None:
            self._stats.decided(rt.planner.dispatch.log)
            self._stats.occupancy(rt.planner.pending(), rt.planner.busy_gpus())
        self.overhead_s += time.perf_counter() - t0

    def _reconcile(self, restorer: Restorer) -> None:
        """Close rows of tries nobody tracks and runs Airflow finished (skipped while the
        store holds writes or outcomes wait to be read: the open rows it would read are
        not yet up to date)."""
        try:
            restorer.close_finished_rows(tracked=self._launch)
        except SQLAlchemyError as exc:
            wait = max(RECONCILE_EVERY_S, RECONCILE_RETRY_S)
            self._next_reconcile = self._now() + wait
            self.log.warning(
                "FATE cannot reconcile placements (retrying in %.0f s): %s",
                wait,
                str(exc).splitlines()[0],
            )
            return
        self._close_finished_runs()

    def _close_finished_runs(self) -> None:
        """Tell the planner which of its DAG runs Airflow finished, so they leave its graph."""
        rt = self._rt
        assert rt is not None
        try:
            done = airflow_db.finished_runs(rt.airflow_engine, rt.planner.open_runs())
        except SQLAlchemyError as exc:
            self.log.warning("FATE cannot read DAG run states (retrying later): %s", exc)
            return
        rt.planner.close_runs(done)

    def _collect(self) -> None:
        """Launcher events and CPU task exits since the last call, into the planner."""
        rt = self._rt
        assert rt is not None
        for event in rt.launcher.poll(0.0):
            self._on_event(event)
        for ended in rt.cpu.poll():
            self._ended(ended.key, ended.code)

    def revoke_task(self, *, ti: TaskInstance) -> None:
        key = task_key(ti.key)
        self.queued_tasks.pop(ti.key, None)
        self._queued.pop(key, None)
        self._ti_keys.pop(key, None)  # no event for a revoked task
        if key in self._cpu_queue:
            self._cpu_queue.remove(key)
        rt = self._rt
        if rt is not None:
            rt.planner.withdraw(key)
            if key in self._launch:
                rt.launcher.cancel(key)
                rt.cpu.stop(key)
        self.running.discard(ti.key)

    def try_adopt_task_instances(self, tis: Sequence[TaskInstance]) -> Sequence[TaskInstance]:
        if self._rt is None and not self._fenced:
            self._check_lease()  # the tasks' scheduler died: its lease may be free now
        rt, restorer = self._rt, self._restorer
        if rt is None or restorer is None:
            return tis
        keys = {task_key(ti.key): ti for ti in tis}
        held = [k for k in keys if k in self._launch]  # taken over when this one started
        adopted = self._take_over(restorer, [k for k in keys if k not in self._launch])
        for key in [*held, *adopted]:
            self.running.add(keys[key].key)
            self._ti_keys[key] = keys[key].key
        taken = len(held) + len(adopted)
        self.log.info("FATE executor adopted %d of %d task instances", taken, len(tis))
        return [ti for key, ti in keys.items() if key not in adopted and key not in held]

    def _take_over(
        self, restorer: Restorer, keys: Sequence[TaskKey], *, give_up: bool = True
    ) -> list[TaskKey]:
        """Track the still-running processes of ``keys`` and occupy their GPUs; which."""
        adopted = restorer.adopt(keys, self._now(), give_up=give_up)
        for key, (placement, start) in adopted.items():
            age = (utcnow() - start).total_seconds()
            self._launch[key] = _Launched(time.monotonic() - age, start, placement)
        return list(adopted)

    def _take_over_open_tries(self, restorer: Restorer) -> int:
        """At start, occupy the GPUs of tries a previous scheduler left running.

        Airflow hands a dead scheduler's task instances over only once that scheduler's
        heartbeat is stale (``scheduler_health_check_threshold``); planning before then
        would put new stages on GPUs whose stage still runs. So every open placement
        whose process still runs is taken over now, and `try_adopt_task_instances`
        later only pairs it with its task instance.
        """
        rt = self._rt
        assert rt is not None
        open_keys = [r.key for r in rt.store.placements(open_only=True)]
        return len(self._take_over(restorer, open_keys, give_up=False))

    # -- queued tasks ----------------------------------------------------------------

    def _now(self) -> float:
        return time.monotonic() - self._t0

    def _register(self, w: ExecuteTask) -> None:
        key = task_key(w.ti.key)
        if key in self._queued or key in self._launch:
            return
        rt = self._rt
        assert rt is not None
        self._settle_earlier_tries(key)
        self._ti_keys[key] = w.ti.key
        try:
            metadata = read_metadata(w.ti.executor_config)
        except MetadataError as exc:
            self._reject(w, str(exc))
            return
        if metadata is None:
            self._queued[key] = _Queued(w, "cpu")
            self._cpu_queue.append(key)
            return
        try:
            layout = self._layout(key.dag_id, key.run_id)
        except SQLAlchemyError as exc:  # stays in queued_tasks: registered at a later sync
            self._airflow_db_failed(exc)
            return
        problem = layout.rejected.get(key.task_id) or stage_problem(
            metadata, rt.catalog, rt.cluster
        )
        if problem is not None:
            self._reject(w, problem)
            return
        self._queued[key] = _Queued(w, "stage", metadata)
        rt.planner.offer(key, metadata, self._now())

    def _settle_earlier_tries(self, key: TaskKey) -> None:
        """Read the outcome of this task's earlier tries whose process has not ended yet.

        Airflow deletes a task instance's XComs when its next try starts running, and the
        ``fate_measured`` XCom is where a failed try says why. A retry can be queued while
        the failed try's process is still winding down (the Task SDK reports the state,
        then exits), so waiting for that exit could read the XCom after the retry cleared
        it. The retry has not been launched yet, so the XCom read here is the earlier try's.
        """
        rt = self._rt
        assert rt is not None
        this_task = replace(key, try_number=0)
        for old in self._launch:
            if (
                replace(old, try_number=0) == this_task
                and old.try_number < key.try_number
                and old not in self._settled
            ):
                try:
                    self._settled[old] = airflow_db.read_outcome(rt.airflow_engine, old)
                except SQLAlchemyError as exc:
                    self.log.warning("FATE cannot read the outcome of %s yet: %s", old, exc)

    def _layout(self, dag_id: str, run_id: str) -> RunLayout:
        """The run's layout, loading it (and replaying its stored placements) once."""
        rt, restorer = self._rt, self._restorer
        assert rt is not None and restorer is not None
        if not rt.planner.has_run(dag_id, run_id):
            tasks = (
                airflow_db.dag_run_tasks(rt.airflow_engine, restorer.dag_bag, dag_id, run_id) or []
            )
            layout = build_layout(tasks, rt.catalog, rt.cluster)
            rt.planner.add_run(dag_id, run_id, layout, self._now())
            try:  # only a run begun before a restart has any; none while the store is down
                if not self._writes.held:
                    restorer.replay_run(dag_id, run_id, self._now())
            except SQLAlchemyError as exc:
                self.log.warning(
                    "FATE cannot read %s/%s's earlier placements (planning it without them): %s",
                    dag_id,
                    run_id,
                    str(exc).splitlines()[0],
                )
        return rt.planner.layout(dag_id, run_id)

    def _reject(self, w: ExecuteTask, reason: str) -> None:
        """Fail a task whose stage cannot be planned, saying why in its log."""
        ti = w.ti
        message = (
            f"FATE cannot run task {ti.dag_id}.{ti.task_id} (run {ti.run_id}, try "
            f"{ti.try_number}): {reason}"
        )
        self.log.error(message)
        folder = self.conf.get("logging", "base_log_folder") or ""
        try:
            airflow_db.append_task_log(folder, w.log_path, message)
        except OSError as exc:
            self.log.warning("cannot write the task log of %s: %s", ti.key, exc)
        self.queued_tasks.pop(ti.key, None)
        self.log_task_event(event="fate rejected", extra=message, ti_key=ti.key)
        self.fail(ti.key, info=message)

    # -- launching -------------------------------------------------------------------

    def _fresh(self, w: ExecuteTask) -> ExecuteTask:
        """The workload with a token minted now (a deferred task's may be near expiry)."""
        try:
            token = ExecuteTask.generate_token(str(w.ti.id), self.jwt_generator)
        except Exception as exc:  # no signing key here: keep the scheduler's token
            if not self._warned_token:
                self._warned_token = True
                self.log.warning("cannot re-mint workload tokens, using the queued ones: %s", exc)
            return w
        return w.model_copy(update={"token": token}) if token else w

    def _take(self, key: TaskKey) -> ExecuteTask:
        queued = self._queued.pop(key)
        ti_key = self._ti_keys[key]
        self.queued_tasks.pop(ti_key, None)
        self.running.add(ti_key)
        return self._fresh(queued.workload)

    def _launch_stage(self, p: Placement) -> None:
        rt = self._rt
        assert rt is not None
        if p.key not in self._queued:  # revoked after it was placed
            rt.planner.finish(p.key, self._now(), 0.0)
            return
        t0 = time.perf_counter()
        w = self._take(p.key)
        placement = rt.placement(p.gpus)
        start = utcnow()
        stage = rt.planner.state.graph.stages[p.uid]
        self._writes.submit(
            rt.store.record_launch,
            PlacementRow(
                key=p.key,
                policy=rt.planner.policy_name,
                node=p.node,
                gpus=p.local_gpus,
                model=stage.model,
                predicted=p.predicted.as_dict(),
                state=LAUNCHED,
                pid=None,
                start=start,
                end=None,
                run_s=None,
                measured=None,
                launcher=rt.settings.launcher,
                **_decision_fields(rt, p.record),
            ),
        )
        where = f"{p.node}:{','.join(map(str, p.local_gpus))}"
        self._launch[p.key] = _Launched(time.monotonic(), start, where)
        try:
            rt.launcher.launch(
                LaunchRequest(
                    key=p.key,
                    command=airflow_task_command(w.model_dump_json()),
                    placement=placement,
                )
            )
        except Exception as exc:
            self.log.exception("launching %s failed", p.key)
            self._ended(p.key, None, f"launch failed: {exc}")
            return
        if self._restorer is not None:
            self._restorer.touch(p.node, p.local_gpus, stage.model)
        self._save_residency(p.node_index)
        self.launched += 1
        if self._stats is not None:
            self._stats.placed(p)
        self.log.info(
            "FATE placed %s on %s GPUs %s (predicted %.2f s) in %.1f ms",
            p.key,
            p.node,
            list(p.local_gpus),
            p.predicted.run,
            (time.perf_counter() - t0) * 1000,
        )

    def _launch_cpu(self) -> None:
        rt = self._rt
        assert rt is not None
        while self._cpu_queue and len(rt.cpu) < rt.settings.cpu_slots:
            key = self._cpu_queue.popleft()
            if key not in self._queued:
                continue
            w = self._take(key)
            start = utcnow()
            self._writes.submit(
                rt.store.record_launch,
                PlacementRow(
                    key=key,
                    policy=CPU_POLICY,
                    node="cpu",
                    gpus=(),
                    model="",
                    predicted={},
                    state=LAUNCHED,
                    pid=None,
                    start=start,
                    end=None,
                    run_s=None,
                    measured=None,
                    launcher="local",
                ),
            )
            env = dict(os.environ)
            env["CUDA_VISIBLE_DEVICES"] = ""
            argv = list(airflow_task_command(w.model_dump_json()))
            argv[0] = _python()
            pid = rt.cpu.spawn(key, argv, env)
            self._launch[key] = _Launched(time.monotonic(), start, "cpu")
            self._writes.submit(rt.store.record_pid, key, pid)
            self.running_state(self._ti_keys[key], f"fate:cpu:pid-{pid}")
            self.launched += 1

    # -- outcomes --------------------------------------------------------------------

    def _on_event(self, event: TaskEvent) -> None:
        rt = self._rt
        assert rt is not None
        if isinstance(event, DevicesLost):
            self._devices_lost(event)
            return
        if isinstance(event, WorkerStarted):
            corrected = rt.planner.observe_pod_start(event.seconds)
            self.log.info(
                "FATE: worker pod started in %.1f s; pod_start_s now %.1f s",
                event.seconds,
                corrected,
            )
            return
        ti_key = self._ti_keys.get(event.key)
        if event.kind in (EventKind.RUNNING, EventKind.ADOPTED):
            launched = self._launch.get(event.key)
            where = launched.where if launched is not None else "?"
            if event.pod_name.startswith("pid-"):
                pid = int(event.pod_name.removeprefix("pid-"))
                self._writes.submit(rt.store.record_pid, event.key, pid)
            if ti_key is not None:
                self.running_state(ti_key, f"fate:{where}:{event.pod_name}")
        elif event.kind in (EventKind.SUCCEEDED, EventKind.FAILED):
            self._ended(event.key, 0 if event.kind is EventKind.SUCCEEDED else 1, event.reason)
        elif event.kind is EventKind.RELEASED:
            self._launch.pop(event.key, None)
            rt.planner.finish(event.key, self._now(), 0.0)

    def _devices_lost(self, event: DevicesLost) -> None:
        """A worker and what it held are gone: the planner stops counting on them."""
        rt, restorer = self._rt, self._restorer
        assert rt is not None and restorer is not None
        self.log.warning(
            "FATE: %s GPUs %s lost their worker: %s",
            event.node,
            list(event.gpu_indices),
            event.reason,
        )
        gpus = restorer.locate(event.node, event.gpu_indices)
        if gpus is not None:
            rt.planner.drop_worker(gpus)
            self._save_residency(rt.cluster.gpus[gpus[0]].node)

    def _ended(self, key: TaskKey, code: int | None, reason: str = "") -> None:
        """A launched try's process is gone: free its GPUs, then record its outcome."""
        rt = self._rt
        assert rt is not None
        launched = self._launch.pop(key, None)
        if launched is None:
            return
        run_s = time.monotonic() - launched.at
        freed = rt.planner.finish(key, self._now(), run_s)
        if freed:
            self._save_residency(rt.cluster.gpus[freed[0]].node)
        self._unread[key] = _Ended(code, reason, run_s)
        self._read_outcomes()

    def _read_outcomes(self) -> None:
        """Record the outcome of ended tries, in the order they ended, from Airflow's
        database; those it cannot read yet (the database is unreachable) wait for a later
        sync, so a database outage delays their records but never loses one."""
        rt = self._rt
        assert rt is not None
        for key in list(self._unread):
            try:
                outcome = self._settled.get(key) or airflow_db.read_outcome(rt.airflow_engine, key)
            except SQLAlchemyError as exc:
                self._airflow_db_failed(exc)
                return
            self._airflow_db_back()
            self._settled.pop(key, None)
            self._record_outcome(key, self._unread.pop(key), outcome)

    def _airflow_db_failed(self, exc: SQLAlchemyError) -> None:
        """Say once per outage that Airflow's database refuses reads (they are retried)."""
        if self._airflow_db_down_since is None:
            self._airflow_db_down_since = time.monotonic()
            self.log.warning(
                "FATE cannot read Airflow's database; queued tasks and ended tries wait "
                "until it answers: %s",
                str(exc).splitlines()[0],
            )

    def _airflow_db_back(self) -> None:
        if self._airflow_db_down_since is not None:
            self.log.info(
                "FATE reads Airflow's database again after %.1f s",
                time.monotonic() - self._airflow_db_down_since,
            )
            self._airflow_db_down_since = None

    def _record_outcome(self, key: TaskKey, ended: _Ended, outcome: airflow_db.Outcome) -> None:
        rt = self._rt
        assert rt is not None
        state = outcome.state or "lost"
        end = outcome.end or utcnow()
        self._writes.submit(rt.store.record_end, key, state, end, ended.run_s, outcome.measured)
        if self._stats is not None:
            self._stats.ended(outcome.measured)
        self._write_metrics()
        ti_key = self._ti_keys.pop(key, None)
        if ti_key is None:
            return
        if state in FINISHED_OK or state in ("failed", "up_for_retry"):
            self.success(ti_key) if state in FINISHED_OK else self.fail(ti_key)
        else:
            exited = f"the task process exited (code {ended.code}) without reporting a state"
            why = ended.reason or exited
            self.fail(ti_key, info=f"{why}; database state: {outcome.state}")

    def _save_residency(self, node: int) -> None:
        rt = self._rt
        assert rt is not None
        if self._restorer is not None:
            name = rt.cluster.nodes[node].name
            rows = residency_rows(rt, node, self._restorer.last_used)
            self._writes.submit(
                rt.store.replace_residency, name, rows, replaces=("residency", name)
            )
            self._writes.submit(
                rt.store.replace_prefix_kv, name, prefix_rows(rt, node), replaces=("kv", name)
            )

    def _write_metrics(self) -> None:
        """``metrics.json``: the counters that also go to Airflow's metrics (`ExecutorStats`)."""
        rt, stats = self._rt, self._stats
        if rt is None or stats is None:
            return
        import json

        stats.decided(rt.planner.dispatch.log)
        doc = stats.summary(tasks_launched=self.launched, overhead_s=self.overhead_s)
        rt.run_dir.mkdir(parents=True, exist_ok=True)
        (rt.run_dir / "metrics.json").write_text(json.dumps(doc, indent=2) + "\n", "utf-8")


def _local(rt: FateRuntime, gpus: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(rt.cluster.gpus[g].local for g in gpus)


def _decision_fields(rt: FateRuntime, record: DecisionRecord | None) -> dict[str, Any]:
    """The planner's reasons as `PlacementRow` fields (none for policies that keep none)."""
    if record is None:
        return {}
    fields: dict[str, Any] = {
        "score": record.score,
        "future_terms": dict(record.future_terms),
        "runner_up_score": record.runner_up_score,
    }
    if record.runner_up:
        fields["runner_up"] = _local(rt, record.runner_up)
        fields["runner_up_node"] = rt.cluster.nodes[rt.cluster.gpus[record.runner_up[0]].node].name
    if record.runner_up_cost is not None:
        fields["runner_up_predicted"] = record.runner_up_cost.as_dict()
    if record.runner_up_terms:
        fields["runner_up_terms"] = dict(record.runner_up_terms)
    return fields


def _python() -> str:
    import sys

    return sys.executable


__all__ = ["FateExecutor", "task_key"]
