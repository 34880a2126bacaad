"""The task agent of a GPU worker pod: authenticated work in, task processes out.

A worker pod (``[fate] kubernetes_mode = worker-pods``) runs two processes that live as
long as the pod: the device worker (`airflow_fate.runtime.worker`, which keeps models
and prefix KV resident on the pod's GPUs) and this agent. The executor hands each
Airflow task workload to the agent over HTTP, signed with a secret only the scheduler
and the worker pods hold (`auth`); the agent runs the task process (the Task SDK's
``execute_workload``, the command the local launcher runs) next to the device worker,
which the task reaches through its Unix socket exactly as local tasks do, and reports
each process's exit. Nothing here imports Kubernetes, Airflow or torch.

* `messages`: what goes over the wire (pydantic);
* `auth`: request signatures (HMAC-SHA256, constant-time comparison);
* `server`: the agent itself (``python -m airflow_fate.launch.agent``);
* `client`: what the executor's backend calls.
"""
