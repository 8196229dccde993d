"""``clientml train --watch``: the loop (:mod:`clientml_mle.watch`) on a DuckDB copy of the session's feature
store with a cheap trainer, its status file and healthcheck, and the command itself in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from clientml_de.tasks import build_features
from clientml_de.warehouse import connect
from clientml_mle import watch
from clientml_mle.bundle import read_manifest
from clientml_mle.features import training_frame
from clientml_mle.pointers import list_versions
from clientml_mle.retrain import RETRAIN_REQUESTS, Source, pending_requests, request_retraining
from clientml_mle.train import training_fingerprint
from clientml_mle.trainable import TrainingDataError
from clientml_mle.watch import STATUS_FILE, State, StatusError, Watcher, check_status
from loop_support import Trainer, execute
from typer.testing import CliRunner

from clientml.cli import app

# What a process_data rerun on the same sources would do if it stamped every row anew: same rows, new time.
RESTAMP = "UPDATE feature_store SET created_at = created_at + INTERVAL 1 DAY"
# A rebuild with different content: 25 labeled rows change, stamped later than any row (as process_data does).
CHANGE = (
    "UPDATE feature_store SET {}, created_at = created_at + INTERVAL 2 DAY WHERE client_id IN "
    "(SELECT client_id FROM feature_store WHERE label IS NOT NULL ORDER BY client_id LIMIT 25)"
)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs the watcher read a training frame from (each is a full read, which a poll should avoid)."""
    calls: list[str] = []

    def counted(warehouse_url: str) -> pd.DataFrame:
        calls.append(warehouse_url)
        return training_frame(warehouse_url)

    monkeypatch.setattr(watch, "training_frame", counted)
    return calls


def status_of(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def test_trains_each_new_content_once(url: str, tmp_path: Path, reads: list[str]) -> None:
    models, status_path = tmp_path / "models", tmp_path / "state" / STATUS_FILE
    trainer = Trainer(models)
    moved = tmp_path / "later.duckdb"
    Path(url.removeprefix("duckdb://")).rename(moved)  # no warehouse yet
    watcher = Watcher(url, models, trainer, status_path, poll_s=60)
    watcher.poll()
    assert status_of(status_path)["state"] == State.WAITING and trainer.calls == 0

    moved.rename(url.removeprefix("duckdb://"))
    watcher.poll()
    assert trainer.calls == 1
    (version,) = list_versions(models)
    fingerprint = training_fingerprint(training_frame(url))
    assert read_manifest(models / version).training_data.fingerprint == fingerprint
    status = status_of(status_path)
    assert status["state"] == State.IDLE and status["last_version"] == version
    assert status["last_fingerprint"] == fingerprint and status["last_error"] is None

    watcher.poll()  # nothing changed: one small query, no training frame read
    build_features(url, None)  # process_data rerun on the same sources: created_at kept, nothing changes
    watcher.poll()
    assert len(reads) == 1
    execute(url, RESTAMP)  # a rebuild that restamps identical rows: read, same fingerprint, not trained
    watcher.poll()
    assert len(reads) == 2 and trainer.calls == 1

    restarted = Watcher(url, models, trainer, status_path, poll_s=60)
    restarted.poll()  # a bundle already has this content
    assert trainer.calls == 1 and status_of(status_path)["last_version"] == version

    execute(url, CHANGE.format("spend_total = spend_total + 1"))
    restarted.poll()
    assert trainer.calls == 2 and len(list_versions(models)) == 2
    assert status_of(status_path)["last_fingerprint"] == training_fingerprint(training_frame(url)) != fingerprint


def _handled(url: str) -> dict[str, str]:
    """The outcome of each handled request, by source."""
    with connect(url, read_only=True) as warehouse:
        rows = warehouse.table(RETRAIN_REQUESTS).to_pyarrow().to_pylist()
    return {row["source"]: row["outcome"] for row in rows if row["handled_at"] is not None}


def test_requests_train_only_when_there_is_something_to_learn_or_a_user_asks(
    url: str, tmp_path: Path, reads: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    models = tmp_path / "models"
    trainer = Trainer(models)
    watcher = Watcher(url, models, trainer, tmp_path / STATUS_FILE, poll_s=60)
    request_retraining(url, Source.NO_REFERENCE, "no champion", monitor_run_id="first")
    watcher.poll()  # new content: trained, and the pending request is marked handled with the outcome
    (version,) = list_versions(models)
    assert trainer.calls == 1 and pending_requests(url) == []
    assert _handled(url)["no_reference"].startswith(f"trained bundle {version}")

    watcher.poll()  # nothing pending, nothing changed: the training frame is not even read
    assert len(reads) == 1
    request_retraining(url, Source.DRIFT, "PSI 0.4 on n_sales_90d", monitor_run_id="second")
    with caplog.at_level("INFO", logger="clientml_mle.watch"):
        watcher.poll()  # drift on content already trained: nothing new to learn, handled
    assert trainer.calls == 1 and pending_requests(url) == []
    assert _handled(url)["drift"].startswith("nothing new to learn: this trainer handled this content already")
    assert "nothing new to learn" in caplog.text

    restarted = Watcher(url, models, trainer, tmp_path / STATUS_FILE, poll_s=60)
    request_retraining(url, Source.LABELS, "labels arrived", monitor_run_id="third")
    restarted.poll()  # a restarted trainer finds the bundle trained on this content
    assert trainer.calls == 1
    assert _handled(url)["labels"] == f"nothing new to learn: bundle {version} was trained on this content"

    request_retraining(url, Source.MANUAL, "asked for by hand")
    restarted.poll()  # a manual request trains even on the same content
    assert trainer.calls == 2 and len(list_versions(models)) == 2 and pending_requests(url) == []
    assert _handled(url)["manual"].startswith("trained bundle ")


@pytest.mark.parametrize(
    "error",
    [TrainingDataError("feature_store has 3 labeled rows of label 1: too few"), TimeoutError("lock timeout")],
    ids=["too-few-labels", "lock-timeout"],
)
def test_a_failed_training_is_retried_only_on_new_content(url: str, tmp_path: Path, error: Exception) -> None:
    status_path = tmp_path / STATUS_FILE
    trainer = Trainer(tmp_path / "models", error)
    watcher = Watcher(url, tmp_path / "models", trainer, status_path, poll_s=60)
    watcher.poll()
    status = status_of(status_path)
    assert trainer.calls == 1 and status["state"] == State.FAILED and str(error) in status["last_error"]
    watcher.poll()
    execute(url, RESTAMP)
    watcher.poll()
    assert trainer.calls == 1 and status_of(status_path)["state"] == State.FAILED

    execute(url, CHANGE.format("label = 1 - label"))
    trainer.error = None
    watcher.poll()
    status = status_of(status_path)
    assert trainer.calls == 2 and status["state"] == State.IDLE and status["last_version"] is not None


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Callable[[Watcher], threading.Thread]]:
    """Start a watcher's loop in a thread; every one is stopped at the end of the test."""
    started: list[tuple[Watcher, threading.Thread]] = []

    def start(watcher: Watcher) -> threading.Thread:
        thread = threading.Thread(target=watcher.run, daemon=True)
        thread.start()
        started.append((watcher, thread))
        return thread

    yield start
    for watcher, thread in started:
        watcher.stop.set()
        thread.join(timeout=10)


def wait_for(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_an_unreachable_warehouse_is_polled_again_and_stop_is_prompt(
    tmp_path: Path, running: Callable[[Watcher], threading.Thread]
) -> None:
    status_path = tmp_path / STATUS_FILE
    unreachable = "postgresql://clientml:secret@127.0.0.1:1/nothing"  # nothing listens on port 1
    trainer = Trainer(tmp_path / "models")
    watcher = Watcher(unreachable, tmp_path / "models", trainer, status_path, poll_s=0.05)
    thread = running(watcher)
    polls: set[str] = set()

    def polled_three_times() -> bool:
        if status_path.exists():
            polls.add(status_of(status_path)["last_poll_at"])
        return len(polls) >= 3

    wait_for(polled_three_times)
    status = status_of(status_path)
    assert status["state"] == State.WAITING and "cannot connect" in status["last_error"]
    assert "secret" not in status_path.read_text() and trainer.calls == 0
    watcher.poll_s = 60  # now asleep for a minute: stop must end the sleep
    time.sleep(0.2)
    began = time.monotonic()
    watcher.stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive() and time.monotonic() - began < 2
    assert status_of(status_path)["state"] == State.STOPPED


def send_signal_when(watcher: Watcher, condition: Callable[[], bool], signum: signal.Signals) -> list[float]:
    """From a thread, send ``signum`` to this process once ``condition`` holds; the time it was sent goes in
    the list returned. The watcher's stop is set a minute later if the condition never holds (the list
    stays empty), or 5 s after the signal, so that a loop deaf to it still ends (late: the test fails)."""
    sent: list[float] = []

    def send() -> None:
        deadline = time.monotonic() + 60
        while not condition():
            if time.monotonic() > deadline:
                watcher.stop.set()
                return
            time.sleep(0.05)
        time.sleep(0.2)  # let the loop get into what it does in that state (sleeping, training)
        sent.append(time.monotonic())
        os.kill(os.getpid(), signum)
        time.sleep(5)
        watcher.stop.set()

    threading.Thread(target=send, daemon=True).start()
    return sent


def in_state(path: Path, state: State) -> Callable[[], bool]:
    return lambda: path.exists() and status_of(path)["state"] == state


def test_sigint_ends_the_sleep_at_once(url: str, tmp_path: Path) -> None:
    status_path = tmp_path / STATUS_FILE
    watcher = Watcher(url, tmp_path / "models", Trainer(tmp_path / "models"), status_path, poll_s=60)
    sent = send_signal_when(watcher, in_state(status_path, State.IDLE), signal.SIGINT)
    before = signal.getsignal(signal.SIGINT)
    watcher.run(handle_signals=True)
    assert sent and time.monotonic() - sent[0] < 2
    assert status_of(status_path)["state"] == State.STOPPED and signal.getsignal(signal.SIGINT) is before


def test_sigint_interrupts_a_training(url: str, tmp_path: Path) -> None:
    status_path = tmp_path / STATUS_FILE

    def endless(frame: pd.DataFrame) -> dict[str, Any]:
        time.sleep(60)
        raise AssertionError("the training was not interrupted")

    watcher = Watcher(url, tmp_path / "models", endless, status_path, poll_s=60)
    sent = send_signal_when(watcher, in_state(status_path, State.TRAINING), signal.SIGINT)
    watcher.run(handle_signals=True)
    assert sent and time.monotonic() - sent[0] < 2
    assert status_of(status_path)["state"] == State.STOPPED and status_of(status_path)["last_version"] is None


def test_check_status_is_the_healthcheck(tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    state_dir = tmp_path / "state"
    path = state_dir / STATUS_FILE
    monkeypatch.setenv("CLIENTML_STATE_DIR", str(state_dir))
    with pytest.raises(StatusError, match="no trainer status"):
        check_status(path, 60)
    result = runner.invoke(app, ["train-status", "--max-age", "60"])
    assert result.exit_code == 1 and "no trainer status" in result.stderr

    beat = datetime.now(UTC)
    status = watch.Status(State.IDLE, "duckdb:///x", 1, beat.isoformat(), beat.isoformat())
    watch.write_status(path, status)
    assert check_status(path, 60)["state"] == State.IDLE
    result = runner.invoke(app, ["train-status", "--max-age", "60"])
    assert result.exit_code == 0 and json.loads(result.stdout)["state"] == "idle"
    with pytest.raises(StatusError, match="heartbeat is 120 s old"):
        check_status(path, 60, now=beat + timedelta(seconds=120))
    watch.write_status(path, watch.Status(State.STOPPED, "duckdb:///x", 1, beat.isoformat(), beat.isoformat()))
    with pytest.raises(StatusError, match="stopped"):
        check_status(path, 60)
    for garbage in ("{not json", "[]", '{"heartbeat_at": "2025-01-01T00:00:00"}'):  # the last: no time zone
        path.write_text(garbage)
        with pytest.raises(StatusError, match="unreadable"):
            check_status(path, 60)


def _wait_for_status(path: Path, done: Callable[[dict[str, Any]], bool], process: subprocess.Popen[bytes]) -> None:
    def ready() -> bool:
        assert process.poll() is None, "clientml train --watch exited"
        return path.exists() and done(status_of(path))

    wait_for(ready, timeout_s=180)


@pytest.mark.slow
def test_clientml_train_watch(url: str, tmp_path: Path) -> None:
    """The command as the trainer container runs it: trains, ignores an identical rebuild, trains on a
    different one, and exits 0 within two seconds of SIGTERM."""
    models, state_dir = tmp_path / "models", tmp_path / "state"
    status_path = state_dir / STATUS_FILE
    env = {**os.environ, "CLIENTML_STATE_DIR": str(state_dir), "CLIENTML_TRAIN_N_JOBS": "1"}
    command = [
        str(Path(sys.executable).with_name("clientml")),
        *["train", "--watch", "--trainer", "default", "--no-tracking"],
        *["--warehouse", url, "--models-dir", str(models), "--poll-seconds", "0.2"],
    ]
    log = tmp_path / "watch.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_status(status_path, lambda s: s["last_version"] is not None, process)
        (first,) = list_versions(models)

        execute(url, RESTAMP)
        with connect(url, read_only=True) as warehouse:
            restamped = str(warehouse.table("feature_store").created_at.max().execute())
        _wait_for_status(status_path, lambda s: s["last_signal"]["max_created_at"] == restamped, process)
        assert list_versions(models) == [first], log.read_text()

        execute(url, CHANGE.format("label = 1 - label"))
        _wait_for_status(status_path, lambda s: s["last_version"] not in (None, first), process)
        assert status_of(status_path)["state"] == State.IDLE and len(list_versions(models)) == 2
    finally:
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=10)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    assert code == 0, log.read_text()
    assert time.monotonic() - began < 2, log.read_text()
    assert status_of(status_path)["state"] == State.STOPPED
    assert "feature_store changed but its content did not" in log.read_text()
