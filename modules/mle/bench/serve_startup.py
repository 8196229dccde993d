"""Start-up time and memory of a server process tree, for ``bench_serve.py``.

- :func:`time_to_ready`: from starting the command to every worker ready (each worker's own "ready" log
  line, and ``/health/ready`` answering 200), polled every 10 ms;
- :func:`worker_rss`: the resident memory of each worker process and of the supervisor;
- :func:`tree_cpu_seconds`: the CPU time a server's processes have used (per request, between two calls).
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil
from clientml_testkit.bench import MB
from clientml_testkit.servers import http_status, stop_process_group

POLL_S = 0.01


def time_to_ready(
    command: list[str],
    *,
    port: int,
    workers: int,
    ready_text: str,
    log: Path,
    env: Mapping[str, str],
    timeout_s: float,
) -> tuple[float, float]:
    """Seconds from starting ``command`` (a fresh process: nothing of a previous run is kept but the
    operating system's file cache) until ``ready_text`` is logged ``workers`` times and ``/health/ready``
    answers 200, and the CPU seconds its processes used until then (what the wall time would be without
    other work on the machine, spread over its cores). The server is stopped afterwards. Raises
    RuntimeError with the log's tail when the server exits or is not ready within ``timeout_s``."""
    with log.open("wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while True:
            elapsed = time.perf_counter() - started
            if process.poll() is not None or elapsed > timeout_s:
                raise RuntimeError(f"not ready after {elapsed:.1f} s:\n{log.read_text(errors='replace')[-3000:]}")
            if (
                log.read_text(errors="replace").count(ready_text) >= workers
                and http_status(port, "/health/ready") == 200
            ):
                return elapsed, tree_cpu_seconds(process.pid)
            time.sleep(POLL_S)
    finally:
        stop_process_group(process)


def cold_starts(repeats: int, **options: Any) -> dict[str, Any]:
    """:func:`time_to_ready` ``repeats`` times (``options`` as for it): every run and the medians."""
    runs = [time_to_ready(**options) for _ in range(repeats)]
    return {
        "runs_s": [wall for wall, _ in runs],
        "median_s": statistics.median(wall for wall, _ in runs),
        "median_cpu_s": statistics.median(cpu for _, cpu in runs),
    }


def worker_rss(root: int) -> dict[str, Any]:
    """Resident memory (MB) of the workers of the server whose supervisor is ``root`` (uvicorn spawns
    them through multiprocessing; with one worker the supervisor serves itself) and of the supervisor."""
    supervisor = psutil.Process(root)
    workers = [p for p in supervisor.children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]
    serving = workers or [supervisor]
    return {
        "workers_mb": [p.memory_info().rss / MB for p in serving],
        "supervisor_mb": supervisor.memory_info().rss / MB if workers else None,
    }


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds used so far by the process ``root`` and all its descendants alive."""
    total = 0.0
    supervisor = psutil.Process(root)
    for process in [supervisor, *supervisor.children(recursive=True)]:
        times = process.cpu_times()
        total += times.user + times.system
    return total
