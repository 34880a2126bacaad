"""The demo and the integration tests' Airflow: a throwaway AIRFLOW_HOME with its services.

`AirflowEnvironment` prepares a home (config through ``AIRFLOW__*`` variables, the
embedded default's cluster, catalog and device inventory), migrates the metadata
database, starts the API server and the scheduler with `FateExecutor`, serialises the
example DAGs, triggers runs, reads their states and placements from the database, and
stops every process it started (process groups, SIGTERM then SIGKILL). The demo command
(`airflow_fate.cli.demo`) and ``tests/integration/airflow`` both use it.
"""
