"""The decision loop shared by the simulator, the live engine and the Airflow executor."""
