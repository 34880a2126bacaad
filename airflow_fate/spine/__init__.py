"""The decision loop and run summary shared by the simulator, the live engine and the executor.

These modules sit below `sim` and `engine` so both import them and neither imports the
other: `Dispatcher` (plan, check, reserve), the unrun-stage message, the run metrics and
the makespan lower bound.
"""
