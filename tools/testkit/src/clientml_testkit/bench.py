"""What the benchmarks measure, in one place: wall and CPU time, peak RSS of a process tree, the machine.

- :class:`PeakRss` samples the summed RSS of some processes and all their descendants in a thread;
- :func:`run_measured` runs a command to its end under a :class:`PeakRss` and ``wait4`` (wall time, CPU
  time of the tree, peak RSS), keeping its stdout;
- :class:`Stopwatch` times stages inside one process (wall, CPU, peak RSS of each);
- :func:`machine` and :func:`code_state` say what was measured where.

Peak RSS sums the processes of the tree at each 0.1 s sample, so memory shared between processes (a
PostgreSQL server's shared buffers) counts once per process: an upper bound.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil

MB = 1 << 20
SAMPLE_SECONDS = 0.1
# Set for every measured command: no telemetry, no usage reports.
QUIET_ENV = {
    "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
}


class PeakRss:
    """Samples the summed RSS of some processes and all their descendants in a background thread."""

    def __init__(self, roots: list[int], extra_roots: list[int] | None = None) -> None:
        self.roots = roots
        self.extra_roots = extra_roots or []
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        seen: set[int] = set()
        total = 0
        for pid in self.roots + self.extra_roots:
            try:
                root = psutil.Process(pid)
                family = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for proc in family:
                if proc.pid in seen:
                    continue
                seen.add(proc.pid)
                with contextlib.suppress(psutil.Error):
                    total += proc.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(SAMPLE_SECONDS)

    def sample(self) -> None:
        self.peak = max(self.peak, self._rss())

    def reset(self) -> None:
        self.peak = 0
        self.sample()

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Stopwatch:
    """Wall time, CPU time of this process and peak RSS (of ``monitor``'s processes) of one stage at a time."""

    def __init__(self, monitor: PeakRss) -> None:
        self.monitor = monitor
        self.restart()

    def restart(self) -> None:
        self.monitor.reset()
        self.wall, self.cpu = time.perf_counter(), cpu_seconds()

    def lap(self, rows: int) -> dict[str, float | int]:
        """The stage since the last lap (or start), as JSON-ready figures; starts the next stage."""
        self.monitor.sample()
        lap = {
            "seconds": time.perf_counter() - self.wall,
            "cpu_seconds": cpu_seconds() - self.cpu,
            "peak_rss": self.monitor.peak,
            "rows": rows,
        }
        self.restart()
        return lap


@dataclass
class Measured:
    """One command run to its end by :func:`run_measured`."""

    seconds: float
    cpu_seconds: float  # of the whole tree of waited-for processes (``wait4``)
    peak_rss: int  # bytes: the sampled tree, or the kernel's high-water mark of its largest process
    returncode: int
    stdout: str
    log: Path | None  # its stderr; None when it went to this process's stderr

    def failure(self) -> str:
        """The exit code and the tail of the log, for a report."""
        killed = " (killed: out of memory?)" if self.returncode in (-9, 137) else ""
        if self.log is None:
            return f"exit code {self.returncode}{killed}"
        tail = "\n".join(self.log.read_text(errors="replace").strip().splitlines()[-15:])
        return f"exit code {self.returncode}{killed}; see {self.log}\n{tail}"


def run_measured(
    command: list[str],
    log: Path | None = None,
    *,
    extra_roots: list[int] | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Measured:
    """Run ``command``: wall time, CPU time and peak RSS of its process tree (plus ``extra_roots``' trees).

    stdout is kept (in ``log`` with the suffix ``.stdout``, or a temporary file); stderr goes to ``log``
    after a ``$ command`` line, or to this process's stderr when ``log`` is None. The environment is this
    process's, with ``env`` and :data:`QUIET_ENV` on top.
    """
    with contextlib.ExitStack() as files:
        err: IO[str] | None = None
        if log is None:
            out: IO[str] = files.enter_context(tempfile.TemporaryFile("w+"))
        else:
            log.parent.mkdir(parents=True, exist_ok=True)
            out = files.enter_context(log.with_suffix(".stdout").open("w+"))
            err = files.enter_context(log.open("w"))
            err.write("$ " + " ".join(command) + "\n")
            err.flush()
        environment = {**os.environ, **(env or {}), **QUIET_ENV}
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=environment, cwd=cwd)
        with PeakRss([proc.pid], extra_roots) as monitor:
            # wait4 also gives the kernel's high-water mark of the largest single process.
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            seconds = time.perf_counter() - started
        out.seek(0)
        stdout = out.read()
    peak = max(monitor.peak, usage.ru_maxrss * 1024)
    return Measured(seconds, usage.ru_utime + usage.ru_stime, peak, proc.returncode, stdout, log)


def json_tail(text: str) -> dict[str, Any]:
    """The JSON object a command printed last on stdout (after whatever else it printed)."""
    start = text.rfind("\n{")
    payload = text[start + 1 :] if start >= 0 else text[text.find("{") :]
    result: dict[str, Any] = json.loads(payload)
    return result


def machine(packages: Iterable[str] = (), extra: Iterable[str] = ()) -> str:
    """CPU model, cores, RAM, OS and Python, then the versions of ``packages`` and the ``extra`` facts."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = psutil.virtual_memory().total / (1 << 30)
    facts = [
        cpu,
        f"{os.cpu_count()} cores",
        f"{memory:.0f} GB RAM",
        f"{platform.system()} {platform.release()}",
        f"Python {platform.python_version()}",
    ]
    for module in packages:
        with contextlib.suppress(Exception):
            facts.append(f"{module} {__import__(module).__version__}")
    return ", ".join([*facts, *extra])


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def code_state(repo: Path, paths: Iterable[str]) -> str:
    """The commit measured, and those of ``paths`` that differ from it (others may be editing the tree)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", *paths], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    changed = [line[3:] for line in status]
    return f"commit {head}" + (f", with uncommitted changes to {', '.join(changed)}" if changed else "")
