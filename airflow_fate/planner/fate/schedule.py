"""The receding-horizon schedule of a window, solved with OR-Tools CP-SAT.

Data (`window.Window`, integer ticks from now): stages ``s`` with weight ``w_s`` and
options ``i`` (GPU set ``G_si``, earliest start ``a_si``, warm run ``r_si``, load
``l_si`` when the model is not resident on ``G_si``, future-term adjustment ``f_si``);
window parents ``P(s)``; transfers ``t(p, i, s, j)``; per load ``k = (model, G)`` the
residencies ``E_k`` it evicts; load pairs ``(k, k')`` that cannot coexist.

Variables: ``x_si`` (s runs on option i), start ``S_si >= a_si`` and an optional interval
``[S_si, S_si + r_si)`` present iff ``x_si``; stage end ``C_s``; per load ``k`` a presence
``y_k`` and an optional interval ``[L_k, L_k + l_k)`` with ``L_k >= free(G_k)``.

Constraints:
  - one option per stage: ``sum_i x_si = 1``; ``x_si => C_s = S_si + r_si``;
  - no overlap per GPU over every stage interval and load interval that uses it: a
    shard group is one interval in the constraint of each of its GPUs (same start);
  - shared loads as sequence-dependent setup: ``x_si => y_k and S_si >= L_k + l_k`` for
    the load ``k`` of option i, and ``y_k => OR of its users``: stages of one model on
    one set pay one load and follow it; a stage on a set where its model is resident
    starts warm;
  - evictions: a warm option i of s whose residency is in ``E_k`` ends before load k:
    ``x_si and y_k => S_si + r_si <= L_k``;
  - clashing loads ``(k, k')``: an order literal ``o``; ``o``: every user of k ends before
    ``L_k'``, else every user of k' ends before ``L_k`` (no model is reloaded in a window);
  - precedence: ``x_sj => S_sj >= C_p`` and ``x_pi and x_sj => S_sj >= C_p + t(p,i,s,j)``.

Objective: ``minimise sum_s w_s * C_s + sum_si w_s * f_si * x_si`` (weights scaled to
integers): weighted completion, plus what each frontier placement leaves beyond the
window.

`build_model`, `solve` and `extract` are separate pure steps; the greedy schedule
(`serial`) is the hint and the answer when CP-SAT finds none in its budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from airflow_fate.planner.fate.solver import LeanCpModel
from airflow_fate.planner.fate.window import LoadKey, Window, WindowPlan

WEIGHT_SCALE = 100
"""Criticality weights (about 0.5-2) become integers with two decimals."""


@dataclass
class ScheduleModel:
    """The CP-SAT model of a window and its variables, keyed by ids."""

    cp: cp_model.CpModel
    x: dict[tuple[int, int], cp_model.IntVar]
    start: dict[tuple[int, int], cp_model.IntVar]
    end: dict[int, cp_model.IntVar]
    load_on: dict[LoadKey, cp_model.IntVar]
    load_start: dict[LoadKey, cp_model.IntVar]
    order: dict[tuple[LoadKey, LoadKey], cp_model.IntVar]
    run: dict[tuple[int, int], int] = field(default_factory=dict)
    on_gpu: dict[int, list[str]] = field(default_factory=dict)
    """Per GPU, the names of the intervals in its no-overlap constraint."""


@dataclass(frozen=True)
class ScheduleResult:
    """A solved window, or None with the solver's status when it found no schedule."""

    plan: WindowPlan | None
    status: str


def build_model(window: Window) -> ScheduleModel:
    cp = LeanCpModel()
    horizon = window.horizon()
    m = ScheduleModel(cp, {}, {}, {}, {}, {}, {})
    intervals: dict[int, list[cp_model.IntervalVar]] = {}
    users: dict[LoadKey, list[tuple[int, int]]] = {}
    objective: list[cp_model.LinearExprT] = []
    for s in window.stages:
        weight = round(s.weight * WEIGHT_SCALE)
        end = m.end[s.uid] = cp.new_int_var(0, horizon, f"end_s{s.uid}")
        row = []
        for i, o in enumerate(s.options):
            x = m.x[s.uid, i] = cp.new_bool_var(f"x_s{s.uid}_o{i}")
            m.run[s.uid, i] = o.run
            start = m.start[s.uid, i] = cp.new_int_var(o.earliest, horizon, f"start_s{s.uid}_o{i}")
            name = f"run_s{s.uid}_o{i}"
            interval = cp.new_optional_fixed_size_interval_var(start, o.run, x, name)
            _use(m, intervals, o.gpus, interval, name)
            cp.add(end == start + o.run).only_enforce_if(x)
            row.append(x)
            if o.extra:
                objective.append(weight * o.extra * x)
            key = s.load_key(i) if window.shared_loads else None
            if key is not None:
                users.setdefault(key, []).append((s.uid, i))
        cp.add_exactly_one(row)
        objective.append(weight * end)
    _loads(window, m, intervals, users, horizon)
    for group in intervals.values():
        if len(group) > 1:
            cp.add_no_overlap(group)
    _evictions(window, m)
    _clashes(window, m, users)
    _precedence(window, m)
    cp.minimize(sum(objective))
    return m


def _use(
    m: ScheduleModel,
    intervals: dict[int, list[cp_model.IntervalVar]],
    gpus: Sequence[int],
    interval: cp_model.IntervalVar,
    name: str,
) -> None:
    for g in gpus:
        intervals.setdefault(g, []).append(interval)
        m.on_gpu.setdefault(g, []).append(name)


def _run_end(m: ScheduleModel, uid: int, i: int) -> cp_model.LinearExprT:
    return m.start[uid, i] + m.run[uid, i]


def _loads(
    window: Window,
    m: ScheduleModel,
    intervals: dict[int, list[cp_model.IntervalVar]],
    users: dict[LoadKey, list[tuple[int, int]]],
    horizon: int,
) -> None:
    cp = m.cp
    by_uid = window.index()
    for key, used_by in sorted(users.items()):
        size = max(by_uid[u].options[i].load for u, i in used_by)
        free = max(window.free[g] for g in key[1])
        on = m.load_on[key] = cp.new_bool_var(f"load_{key[0]}_{key[1]}")
        start = m.load_start[key] = cp.new_int_var(free, horizon, f"load_start_{key[0]}_{key[1]}")
        name = f"load_{key[0]}_{key[1]}"
        interval = cp.new_optional_fixed_size_interval_var(start, size, on, name)
        _use(m, intervals, key[1], interval, name)
        for u, i in used_by:
            cp.add_implication(m.x[u, i], on)
            cp.add(m.start[u, i] >= start + size).only_enforce_if(m.x[u, i])
        cp.add_bool_or([m.x[u, i] for u, i in used_by]).only_enforce_if(on)


def _evictions(window: Window, m: ScheduleModel) -> None:
    """Warm runs of a residency a planned load evicts end before that load starts."""
    for key, evicted in window.evicts.items():
        if key not in m.load_on or not evicted:
            continue
        for s in window.stages:
            for i, o in enumerate(s.options):
                if o.load == 0 and (s.model, o.gpus) in evicted:
                    m.cp.add(_run_end(m, s.uid, i) <= m.load_start[key]).only_enforce_if(
                        [m.x[s.uid, i], m.load_on[key]]
                    )


def _clashes(window: Window, m: ScheduleModel, users: dict[LoadKey, list[tuple[int, int]]]) -> None:
    """Of two loads that cannot stay together, one's users all end before the other loads."""
    cp = m.cp
    for a, b in window.clashes:
        if a not in m.load_on or b not in m.load_on:
            continue
        first = m.order[a, b] = cp.new_bool_var(f"order_{a}_{b}")
        for (before, after), lit in (((a, b), first), ((b, a), first.Not())):
            for u, i in users[before]:
                cp.add(_run_end(m, u, i) <= m.load_start[after]).only_enforce_if(
                    [m.x[u, i], m.load_on[after], lit]
                )


def _precedence(window: Window, m: ScheduleModel) -> None:
    cp = m.cp
    by_uid = window.index()
    for s in window.stages:
        for p in s.parents:
            for j in range(len(s.options)):
                cp.add(m.start[s.uid, j] >= m.end[p]).only_enforce_if(m.x[s.uid, j])
                for i in range(len(by_uid[p].options)):
                    t = window.transfer.get((p, i, s.uid, j), 0)
                    if t:
                        cp.add(m.start[s.uid, j] >= m.end[p] + t).only_enforce_if(
                            [m.x[p, i], m.x[s.uid, j]]
                        )


def add_hint(window: Window, m: ScheduleModel, plan: WindowPlan) -> None:
    """Warm-start CP-SAT from ``plan`` (the greedy schedule): options, starts, loads."""
    cp = m.cp
    by_uid = window.index()
    for s in window.stages:
        chosen = plan.choice.get(s.uid)
        if chosen is None:
            continue
        for i in range(len(s.options)):
            cp.add_hint(m.x[s.uid, i], i == chosen)
        cp.add_hint(m.start[s.uid, chosen], plan.start[s.uid])
        cp.add_hint(m.end[s.uid], plan.start[s.uid] + by_uid[s.uid].options[chosen].run)
    for key, on in m.load_on.items():
        cp.add_hint(on, key in plan.loads)
        if key in plan.loads:
            cp.add_hint(m.load_start[key], plan.loads[key])
    for (a, b), lit in m.order.items():
        if a in plan.loads and b in plan.loads:
            cp.add_hint(lit, plan.loads[a] <= plan.loads[b])


def solve(
    window: Window,
    m: ScheduleModel,
    *,
    time_limit_s: float,
    num_workers: int,
    random_seed: int,
    work_limit: float | None = None,
) -> ScheduleResult:
    """Solve within the budget; ``plan`` is None unless CP-SAT found a schedule.

    ``work_limit`` bounds CP-SAT's deterministic time, so with one worker the answer does
    not depend on machine load; ``time_limit_s`` is the wall-clock safety net.
    """
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    if work_limit is not None:
        solver.parameters.max_deterministic_time = work_limit
    solver.parameters.num_workers = num_workers
    solver.parameters.random_seed = random_seed
    status = solver.solve(m.cp)
    name = solver.status_name(status)
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return ScheduleResult(extract(window, m, solver), name)
    return ScheduleResult(None, name)


def extract(window: Window, m: ScheduleModel, solver: cp_model.CpSolver) -> WindowPlan:
    choice: dict[int, int] = {}
    start: dict[int, int] = {}
    for s in window.stages:
        for i in range(len(s.options)):
            if solver.boolean_value(m.x[s.uid, i]):
                choice[s.uid] = i
                start[s.uid] = solver.value(m.start[s.uid, i])
                break
    loads = {
        key: solver.value(m.load_start[key])
        for key, on in m.load_on.items()
        if solver.boolean_value(on)
    }
    return WindowPlan(choice, start, loads)
