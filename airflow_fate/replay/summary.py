"""The replay's findings in sentences, for the CLI and the UI alike."""

from __future__ import annotations

from airflow_fate.replay.report import ReplayReport


def summary_lines(report: ReplayReport) -> list[str]:
    """Model error, the best policy and where its difference comes from, calibration."""
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
    done = [r for r in report.rows if r.figures is not None and r.delta is not None]
    if done:
        best = min(done, key=lambda r: (r.figures.makespan_s if r.figures else 0.0, r.policy))
        d = best.delta
        assert d is not None
        lines.append(
            f"best replay: {best.policy}, makespan {d.makespan_s:+.1f} s against the run; "
            f"its stages load {d.load_s:+.1f} s ({d.loads:+d} loads), wait {d.wait_s:+.1f} s "
            f"and reuse a prefix {d.prefix_hits:+d} times against the run's"
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
