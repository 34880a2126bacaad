"""The replay's findings in sentences, for the CLI and the UI alike."""

from __future__ import annotations

from airflow_fate.replay.report import ReplayReport


def summary_lines(report: ReplayReport) -> list[str]:
    """Model error, the best other policy and where its difference comes from (against
    the replay of the policy that ran, so the model's own error cancels), calibration."""
    lines = []
    e = report.model_error
    if e is not None:
        lines.append(
            f"cost model error on this run: the replay of {e.policy}, the policy that ran, "
            f"is {e.makespan_pct:+.1f}% off the measured makespan (mean latency "
            f"{e.mean_latency_pct:+.1f}%, P95 {e.p95_latency_pct:+.1f}%)"
        )
    else:
        lines.append(f"no single policy placed these runs ({', '.join(report.ran)}): no error")
    done = {r.policy: r.figures for r in report.rows if r.figures is not None}
    base = done.get(e.policy) if e is not None else None
    others = sorted(  # policies that placed differently from the one that ran
        (f.makespan_s, p) for p, f in done.items() if e is None or f != base
    )
    if base is not None and e is not None and others:
        best = done[others[0][1]]
        assert best is not None
        lines.append(
            f"best policy that placed differently: {others[0][1]}, makespan "
            f"{best.makespan_s - base.makespan_s:+.1f} s against the replay of {e.policy}; "
            "its stages load "
            f"{best.load_s - base.load_s:+.1f} s ({best.loads - base.loads:+d} loads), wait "
            f"{best.wait_s - base.wait_s:+.1f} s, reuse a prefix "
            f"{best.prefix_hits - base.prefix_hits:+d} times"
        )
    factors = ", ".join(
        f"{c.model} on {c.gpu_type}: compute x{_x(c.compute)}, load x{_x(c.load)}"
        for c in report.calibration
    )
    lines.append(f"calibration (measured / predicted): {factors}")
    lines.append(
        f"kept as measured under every policy: {report.airflow_s:.1f} s of Airflow's own "
        "time in these stages (task processes, hand-offs, CPU tasks in between)"
    )
    lines.extend(f"note: {n}" for n in report.notes)
    return lines


def _x(factor: float | None) -> str:
    return "-" if factor is None else f"{factor:.2f}"
