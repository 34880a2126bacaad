"""Discrete-event simulation of policies on workloads (metrics live in `airflow_fate.spine`)."""
