"""What if: past Airflow runs replayed under every policy.

``airflow-fate replay`` and the UI's "what if" panel rebuild the workload a DAG run
executed from the metadata database (``fate_placement`` rows with measured times, the
run's serialized DAG, each stage's ``executor_config["fate"]``), calibrate the cost model
on what was measured, and re-simulate that workload under each policy with the same
simulator, planner and state code as ``simulate``. Modules, pure unless said:

- `records`: the data read from the database (`RunSource`) and a run as replayed
  (`PastRun`, `StageRun`);
- `runs`: `RunSource` -> `PastRun` (last tries, mapped instances, stage parents);
- `workload`: `PastRun`s -> a `Workload` plus each stage's Airflow-side times;
- `calibration`: measured over predicted seconds per (model, GPU type);
- `timing`: the simulator's `StageTiming` for a replay;
- `figures` and `report`: the measured and replayed figures, the JSON document;
- `compare`: one replay per policy against the measured run;
- `reading` (imports Airflow): runs, tasks and queue times from the database;
- `whatif`: which runs to replay (the chosen ones and those that shared the GPUs).
"""
