"""``python -m airflow_fate.launch.agent``: the worker pod's main process.

Reads its `AgentConfig` and the shared secret from the environment (removing the
secret from it first, so neither the device worker nor any task inherits it), starts
the device worker, and serves the executor until SIGTERM; then it stops every task and
the worker, as the container's end would.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from pydantic import ValidationError

from airflow_fate.launch.agent.auth import Secret
from airflow_fate.launch.agent.messages import CONFIG_ENV, HOST_ENV, SECRET_ENV, AgentConfig
from airflow_fate.launch.agent.server import (
    WORKER_LIFETIME_S,
    SpawnedWorker,
    TaskAgent,
    serve,
    without,
)
from airflow_fate.runtime.binding import WorkerConfig
from airflow_fate.runtime.owner_only import private_directory

log = logging.getLogger("airflow_fate.agent")


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    raw_secret = os.environ.pop(SECRET_ENV, "")
    try:
        config = AgentConfig.model_validate_json(os.environ.get(CONFIG_ENV, ""))
        secret = Secret(raw_secret)
    except (ValidationError, ValueError) as exc:
        print(f"airflow-fate agent: bad {CONFIG_ENV} or {SECRET_ENV}: {exc}", file=sys.stderr)
        return 2
    del raw_secret
    work = Path(config.pod_dir)
    work.mkdir(parents=True, exist_ok=True)
    env = without(os.environ, CONFIG_ENV)
    worker = SpawnedWorker(
        WorkerConfig(
            binding=config.binding,
            # a pod's volume (an emptyDir) is 0777: the socket gets a directory of its own
            socket_path=str(private_directory(work / "sockets") / "worker.sock"),
            linger_s=WORKER_LIFETIME_S,
            accept_timeout_s=WORKER_LIFETIME_S,
        ),
        env,
        work / "worker.log",
    )
    agent = TaskAgent(config, secret, worker, env)
    signal.signal(signal.SIGTERM, _terminate)
    worker.ensure_running()
    server = serve(agent, os.environ.get(HOST_ENV) or "0.0.0.0", config.port)
    stop = threading.Event()
    refresher = threading.Thread(
        target=agent.refresh_forever, args=(stop,), name="fate-agent-refresh", daemon=True
    )
    refresher.start()
    log.info(
        "agent of pod %s on %s GPUs %s listening on port %d",
        config.pod,
        config.node,
        config.gpu_indices,
        config.port,
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        stop.set()
        server.server_close()
        agent.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
