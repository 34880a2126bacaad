"""Benchmarks: every policy on seeded suite workloads, and the planner's decision time.

- `runner`: run (policy, seed, sweep point) jobs in worker processes, deterministically;
- `stats`: per-seed normalisation by RoundRobin, mean and 95% t interval;
- `results`: the ``results.json`` document and the summary of job results into it;
- `report`: ``results.json`` and the markdown tables of ``results.md``;
- `plots`: PNG figures (matplotlib, imported lazily);
- `driver`: the ``bench`` command as one call;
- `planner_scale`: the ``bench-planner`` command's snapshots and timings.
"""
