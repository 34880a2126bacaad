"""Discrete-event simulation of policies on workloads, with metrics and a lower bound."""
