""" "Why this GPU": one try's decision record, read back for people.

The executor stores, per try, the predicted breakdown of the chosen GPU set, FATE's
future-state terms, the score, and the runner-up's GPUs and score (`store.PlacementRow`).
It does not store the runner-up's own breakdown, so the comparison is score against
score; the reasons below are derived only from stored fields, never guessed.
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
    lines = [
        CostLine(
            term=t,
            predicted_s=p.predicted.get(t, 0.0),
            measured_s=_measured(p.measured, t),
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
        runner_up_score=row.runner_up_score,
        margin=margin,
        reasons=_reasons(row, terms, margin),
        tries=tries,
    )


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
        out.append(f"The runner-up, {noun} {gpus}, scored {margin:.2f} worse (lower scores win).")
    elif row.score is not None:
        out.append("No other candidate was feasible.")
    elif row.policy != "fate":
        out.append(f"The {row.policy} policy records no score or runner-up.")
    return out
