"""Launchers: start stages on the devices a planner chose and report what happened.

`airflow_fate.launch.types` holds the `Launcher` protocol the live engine drives and its
events; `airflow_fate.launch.local` runs stages in device workers on this machine;
``airflow_fate.launch.kubernetes`` runs Airflow tasks as pods. Importing this package
imports neither torch nor the Kubernetes client.
"""

from __future__ import annotations
