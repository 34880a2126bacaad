"""The Airflow UI monitor: where each stage ran, what was warm, and why FATE chose it.

An Airflow plugin (`plugin.FatePlugin`, registered through the ``airflow.plugins`` entry
point) mounts a FastAPI app under ``/fate`` on Airflow's API server: a JSON API over the
``fate_*`` tables (`api`) and server-rendered pages (`pages`) that Airflow's UI shows as
a navigation page, a dag-run tab and a task-instance tab. Every route requires the same
authentication as Airflow's REST API (`auth`).

The pure parts (`schemas`, `gantt`, `cluster_map`, `decision`, `colours`) import neither
Airflow nor FastAPI, so they are unit-tested without a server; Airflow and FastAPI are
imported only by `auth`, `source`, `api`, `pages`, `app` and `plugin`.
"""
