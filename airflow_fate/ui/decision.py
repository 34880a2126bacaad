""" "Why this GPU": one try's decision record, read back for people.

The executor stores, per try, the predicted breakdown of the chosen GPU set, FATE's
future-state terms and score, and the same for the runner-up candidate (its node, GPUs,
breakdown, terms and score; `store.PlacementRow`). Rows written before the runner-up's
breakdown was kept have only its GPUs and score. The reasons below are derived only from
stored fields, never guessed.
"""

from __future__ import annotations

from airflow_fate.executor.store import PlacementRow
from airflow_fate.ui.schemas import CostLine, Decision, FutureTerm, placement

BREAKDOWN = ("wait", "load", "input", "prefill", "decode")
MEASURED_KEYS = {"load": "load_s", "prefill": "prefill_s", "decode": "decode_s"}
"""Components the device worker measures (wait and input are not measured)."""
CREDITS = frozenset({"residency", "locality", "prefix"})
"""Future terms that lower the score; the others (eviction, reachability) raise it."""


def decision(rows: list[PlacementRow], try_number: int | None = None) -> Decision | None:
    """The decision of ``try_number`` (default: the latest) among one task's tries."""
    if not rows:
        return None
    tries = sorted(r.key.try_number for r in rows)
    wanted = tries[-1] if try_number is None else try_number
    row = next((r for r in rows if r.key.try_number == wanted), None)
    if row is None:
        return None
    p = placement(row)
    other = row.runner_up_predicted
    lines = [
        CostLine(
            term=t,
            predicted_s=p.predicted.get(t, 0.0),
            measured_s=_measured(p.measured, t),
            runner_up_s=float(other.get(t, 0.0)) if other is not None else None,
        )
        for t in BREAKDOWN
        if t in p.predicted
    ]
    terms = [
        FutureTerm(term=name, seconds=float(value), effect=_effect(name, float(value)))
        for name, value in (row.future_terms or {}).items()
    ]
    margin = (
        row.runner_up_score - row.score
        if row.runner_up_score is not None and row.score is not None
        else None
    )
    return Decision(
        placement=p,
        breakdown=lines,
        predicted_total_s=sum(line.predicted_s for line in lines),
        measured_total_s=p.measured_stage_s,
        future_terms=terms,
        score=row.score,
        runner_up=p.runner_up,
        runner_up_node=row.runner_up_node,
        runner_up_score=row.runner_up_score,
        runner_up_total_s=sum(float(v) for v in other.values()) if other is not None else None,
        runner_up_terms=row.runner_up_terms,
        margin=margin,
        reasons=_reasons(row, terms, margin),
        tries=tries,
    )


def _biggest_difference(row: PlacementRow) -> list[str]:
    """The component where the runner-up's prediction differed most from the choice."""
    other = row.runner_up_predicted
    if not other:
        return []
    deltas = {t: float(other.get(t, 0.0)) - float(row.predicted.get(t, 0.0)) for t in BREAKDOWN}
    term, delta = max(deltas.items(), key=lambda kv: abs(kv[1]))
    if abs(delta) < 1e-3:
        return ["Both were predicted to take the same time; the future-state terms decided."]
    more = "more" if delta > 0 else "less"
    return [f"There it would have needed {abs(delta):.2f} s {more} {term} than here."]


def _measured(measured: dict[str, object] | None, term: str) -> float | None:
    key = MEASURED_KEYS.get(term)
    value = measured.get(key) if measured and key else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _effect(name: str, seconds: float) -> str:
    if seconds == 0:
        return "none"
    lowers = (name in CREDITS) == (seconds > 0)
    return "lowered the score" if lowers else "raised the score"


def _reasons(row: PlacementRow, terms: list[FutureTerm], margin: float | None) -> list[str]:
    if not row.gpus:
        return ["A CPU task: it ran on a local CPU slot; FATE places only GPU stages."]
    where = f"{row.node} GPU{'s' if len(row.gpus) > 1 else ''} {', '.join(map(str, row.gpus))}"
    out = [f"The {row.policy} policy placed this try on {where}."]
    load = row.predicted.get("load")
    if load is not None:
        out.append(
            f"{row.model} was predicted warm there (no load)."
            if load == 0
            else f"{row.model} was predicted cold there: {load:.2f} s to load."
        )
    warm = (row.measured or {}).get("model_warm")
    if isinstance(warm, bool):
        out.append(
            "The device worker found the model resident."
            if warm
            else "The device worker loaded the model (cold)."
        )
    if (row.measured or {}).get("prefix_warm") is True:
        tokens = (row.measured or {}).get("reused_prefix_tokens")
        out.append(f"It reused a warm prefix KV ({tokens} tokens).")
    for t in sorted(terms, key=lambda t: -abs(t.seconds)):
        if t.seconds != 0:
            kind = "credit" if t.term in CREDITS else "debit"
            out.append(f"Future {t.term} {kind} of {t.seconds:.2f} s {t.effect}.")
    if row.runner_up is not None and margin is not None:
        gpus = ", ".join(map(str, row.runner_up))
        noun = "GPUs" if len(row.runner_up) > 1 else "GPU"
        where = f"{row.runner_up_node} {noun}" if row.runner_up_node else noun
        out.append(f"The runner-up, {where} {gpus}, scored {margin:.2f} worse (lower scores win).")
        out.extend(_biggest_difference(row))
    elif row.score is not None:
        out.append("No other candidate was feasible.")
    elif row.policy != "fate":
        out.append(f"The {row.policy} policy records no score or runner-up.")
    return out
