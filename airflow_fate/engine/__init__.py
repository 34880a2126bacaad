"""The live engine: the shared decision loop (`airflow_fate.spine`) on a wall clock."""
