"""Planners: the `Policy` interface, candidate GPU sets, baselines and FATE."""
