"""Benchmark workloads: templates of published LLM applications, suites and a generator.

`generate` turns a `GenerateRequest` (suite, count, seed, load, suite options) into a
`Workload` with Poisson arrivals at an offered load of the given cluster; `write_workload`
writes it as ``workload.json`` after loading it back. Imports only the domain, the cost
model (for the load) and numpy.
"""

from __future__ import annotations

from airflow_fate.workloads.generator import (
    DEFAULT_LOAD,
    GeneratedWorkload,
    GenerateRequest,
    generate,
)
from airflow_fate.workloads.load import OfferedLoad, capacity, offered_load
from airflow_fate.workloads.output import dumps, write_workload
from airflow_fate.workloads.suites import (
    PREFIX_COUNT_SWEEP,
    PREFIX_FRACTION_SWEEP,
    SUITES,
    SuiteOptions,
)

__all__ = [
    "DEFAULT_LOAD",
    "PREFIX_COUNT_SWEEP",
    "PREFIX_FRACTION_SWEEP",
    "SUITES",
    "GenerateRequest",
    "GeneratedWorkload",
    "OfferedLoad",
    "SuiteOptions",
    "capacity",
    "dumps",
    "generate",
    "offered_load",
    "write_workload",
]
