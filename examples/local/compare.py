"""Compare policies on the local example for real, in one invocation.

    python examples/local/compare.py --policies round-robin fate [--json OUT]

Each policy runs the same workload with fresh device workers (no residency carried over)
and starts from the same correction state (``--correction``, empty by default), learning
online during its own run. Reported:

- wall time per policy and ``wall(first) / wall(other)`` for each other policy;
- the cost model's error on every stage: *profile* (catalog rates and bandwidths only),
  *online* (factors learned so far in the same run), and *cross-run* (factors learned from
  the whole of the other policies' runs, applied to this run's stages: what a later run
  plans with after the correction has been persisted).

With ``--save FILE`` the correction learned from all runs (in order) is written there.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

from airflow_fate.cli.run import model_resolver
from airflow_fate.cost.correction import CorrectionStore
from airflow_fate.domain.loaders import load_inputs
from airflow_fate.engine.calibration import CostSample, estimate_error, with_factors
from airflow_fate.engine.live import LiveEngine, LiveOutcome
from airflow_fate.launch.devices import bind, load_devices
from airflow_fate.launch.local import LocalLauncher
from airflow_fate.planner.registry import make_policy

HERE = Path(__file__).resolve().parent


def run_policy(args: argparse.Namespace, policy: str, store: CorrectionStore) -> LiveOutcome:
    inputs = load_inputs(args.cluster, args.models, args.workload)
    bindings = bind(inputs.cluster, load_devices(args.inventory), str(args.inventory))
    with LocalLauncher(bindings) as launcher:
        return LiveEngine(
            cluster=inputs.cluster,
            catalog=inputs.catalog,
            workload=inputs.workload,
            policy=make_policy(policy),
            launcher=launcher,
            resolve=model_resolver(inputs, args.models),
            corrections=store,
        ).run()


def learned_from(samples: list[CostSample], start: CorrectionStore) -> CorrectionStore:
    """``start`` after observing ``samples`` in order (what online learning would store)."""
    store = copy.deepcopy(start)
    for s in samples:
        store.observe_stage(s.model, s.gpu_type, s.profile, s.measured)
    return store


def cross_run(samples: list[CostSample], store: CorrectionStore) -> list[CostSample]:
    compute, load = store.factors()
    return [
        with_factors(
            s, compute.get((s.model, s.gpu_type), 1.0), load.get((s.model, s.gpu_type), 1.0)
        )
        for s in samples
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", nargs="+", default=["round-robin", "fate"])
    parser.add_argument("--cluster", type=Path, default=HERE / "cluster.yaml")
    parser.add_argument("--models", type=Path, default=HERE / "models.yaml")
    parser.add_argument("--workload", type=Path, default=HERE / "workload.json")
    parser.add_argument("--inventory", type=Path, default=HERE / "inventory.yaml")
    parser.add_argument("--correction", type=Path, default=None, help="starting state file")
    parser.add_argument("--save", type=Path, default=None, help="write the learned state here")
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    args = parser.parse_args()

    start = CorrectionStore.load(args.correction) if args.correction else CorrectionStore()
    outcomes: dict[str, LiveOutcome] = {}
    for policy in args.policies:
        print(f"running {policy} (load average {os.getloadavg()[0]:.2f}) ...", flush=True)
        outcomes[policy] = run_policy(args, policy, copy.deepcopy(start))
        o = outcomes[policy]
        status = "ok" if o.result is not None else f"{len(o.failed)} failed"
        print(f"  {policy}: wall {o.wall_s:.1f} s ({status})", flush=True)

    entries: dict[str, dict[str, Any]] = {}
    for policy, o in outcomes.items():
        others = [s for p, x in outcomes.items() if p != policy for s in x.samples]
        err = estimate_error(o.samples)
        crossed = estimate_error(cross_run(o.samples, learned_from(others, start)))
        entries[policy] = {
            "wall_s": round(o.wall_s, 2),
            "makespan_s": o.result.makespan_s if o.result is not None else None,
            "counters": o.result.counters.model_dump() if o.result is not None else {},
            "failed": [f.stage for f in o.failed],
            "error": {
                "stages": err.stages,
                "profile": {"mape": err.profile_mape, "wape": err.profile_wape},
                "online": {"mape": err.corrected_mape, "wape": err.corrected_wape},
                "cross_run": {"mape": crossed.corrected_mape, "wape": crossed.corrected_wape},
            },
        }
    first = args.policies[0]
    ratios = {p: outcomes[first].wall_s / outcomes[p].wall_s for p in args.policies[1:]}
    report = {
        "policies": entries,
        "wall_ratio_vs_first": {p: round(r, 3) for p, r in ratios.items()},
        "load_average_end": os.getloadavg()[0],
    }
    print(
        f"\n{'policy':<14}{'wall s':>9}{'loads':>7}{'load s':>9}   cost error MAPE/WAPE: "
        "profile | online | cross-run"
    )
    for policy, e in entries.items():
        cells = " | ".join(
            f"{e['error'][k]['mape']:.0%}/{e['error'][k]['wape']:.0%}"
            for k in ("profile", "online", "cross_run")
        )
        loads, load_s = e["counters"].get("model_loads", 0), e["counters"].get("load_s", 0.0)
        print(f"{policy:<14}{e['wall_s']:>9.1f}{loads:>7}{load_s:>9.1f}   {cells}")
    for policy, ratio in ratios.items():
        print(f"wall({first}) / wall({policy}) = {ratio:.2f}")
    if args.save is not None:
        every = [s for o in outcomes.values() for s in o.samples]
        learned_from(every, start).save(args.save)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if all(o.result is not None for o in outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
