"""A greedy schedule of a window: the solver's warm start and its fallback.

Stages are taken in window order (ready stages by criticality, then soon-ready ones,
parents first); each takes the option with the least end plus future terms (its share
of the objective) given what is already planned: it starts after its GPUs free up, its
parents end (plus transfer) and its load, if the model is not yet planned onto the set.
The schedule only appends, so it respects every rule of the CP-SAT model (`schedule`):
once a load is planned, the residencies it evicts and the loads it cannot coexist with
are closed to later stages. A stage with every option closed is left out, with its
children (none is launched from this plan; the next epoch plans them again).
"""

from __future__ import annotations

from airflow_fate.planner.fate.window import LoadKey, Window, WindowPlan, WindowStage
from airflow_fate.state.cluster_state import Residency


def serial_schedule(window: Window) -> WindowPlan:
    """Place the window's stages one by one, each on its cheapest open option."""
    avail = dict(window.free)
    load_end: dict[LoadKey, int] = {}
    loads: dict[LoadKey, int] = {}
    closed: set[Residency] = set()
    partners = _clash_partners(window)
    choice: dict[int, int] = {}
    start: dict[int, int] = {}
    end: dict[int, int] = {}
    for s in window.stages:
        if any(p not in choice for p in s.parents):
            continue  # a parent was left out: so is the child
        best: tuple[int, int, int, int] | None = None  # (end, option, start, load start)
        for i, o in enumerate(s.options):
            key = s.load_key(i) if window.shared_loads else None
            if (key or (s.model, o.gpus)) in closed:
                continue
            free = max([o.earliest, *(avail[g] for g in o.gpus)])
            ready = _parents_done(window, s, i, choice, end)
            load_start = -1
            if key is None:
                begin = max(free, ready)
            elif key in load_end:
                begin = max(free, ready, load_end[key])
            else:
                load_start = free
                begin = max(free + o.load, ready)
            cand = (begin + o.run + o.extra, i, begin, load_start)
            if best is None or cand < best:
                best = cand
        if best is None:
            continue
        _, i, begin, load_start = best
        finish = begin + s.options[i].run
        choice[s.uid], start[s.uid], end[s.uid] = i, begin, finish
        o = s.options[i]
        for g in o.gpus:
            avail[g] = finish
        key = s.load_key(i) if window.shared_loads else None
        if key is not None and load_start >= 0:
            loads[key] = load_start
            load_end[key] = load_start + o.load
            closed.update(window.evicts.get(key, ()))
            closed.update(partners.get(key, ()))
    return WindowPlan(choice, start, loads)


def _parents_done(
    window: Window, s: WindowStage, i: int, choice: dict[int, int], end: dict[int, int]
) -> int:
    t = 0
    for p in s.parents:
        if p in choice:
            t = max(t, end[p] + window.transfer.get((p, choice[p], s.uid, i), 0))
    return t


def _clash_partners(window: Window) -> dict[LoadKey, set[LoadKey]]:
    out: dict[LoadKey, set[LoadKey]] = {}
    for a, b in window.clashes:
        out.setdefault(a, set()).add(b)
        out.setdefault(b, set()).add(a)
    return out
