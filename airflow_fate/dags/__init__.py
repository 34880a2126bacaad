"""Example DAGs shipped with airflow-fate (the demo's, mirroring the benchmark templates).

Point ``[core] dags_folder`` here to run them: `fate_rag_judge`, `fate_map_reduce_summary`
and `fate_multi_agent_review`. They use the embedded default's small real models
(``smollm2-135m-instruct``, ``all-minilm-l6-v2``) with tiny token counts.
"""
