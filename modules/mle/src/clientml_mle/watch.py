"""``clientml train --watch``: train whenever ``feature_store``'s content changes, and report in a status file.

:class:`Watcher` looks at the warehouse every ``poll_s`` seconds:

1. :func:`~clientml_mle.features.table_signal`, one aggregate query (row counts, newest ``created_at``,
   ``feature_set_version`` range). Unchanged since the content was last handled: nothing else is read.
2. Changed: the training frame is read and fingerprinted with :func:`~clientml_mle.train.training_fingerprint`,
   the fingerprint the bundle manifest records (``training_data.fingerprint``). Content this loop handled
   last (trained, or failed to train), or that a bundle of the models directory was trained on (so a
   restarted trainer does not train again), is not trained. A rebuild that restamps identical rows (a new
   ``created_at``) keeps the fingerprint, since the bookkeeping columns are not part of it.
3. New content: the train function runs (the CLI's chosen trainer; its champion gate decides promotion).

Each poll also reads the pending retraining requests (:mod:`clientml_mle.retrain`: one small query, once the
table exists). Pending requests make the content be looked at even when the signal did not change, and
:func:`~clientml_mle.retrain.decide` rules: a ``manual`` or ``no_reference`` request trains even on content
already trained; a ``drift`` or ``labels`` request on such content trains nothing ("nothing new to learn").
Every request pending at the look is then marked handled with the outcome (the version trained and the
gate's decision, "nothing new to learn", or the training's error).

Nothing a poll meets ends the loop: an unreachable warehouse is logged and tried again at the next poll;
a training that fails is logged and its content not tried again until the content changes (a restarted
trainer tries it once more). SIGTERM and SIGINT stop the loop at once: a sleep ends, a poll or a training in
progress is interrupted (:class:`WatchStopped`), as Ctrl-C would. Bundles are published atomically, so the
worst an interrupted training leaves is no bundle (the next start trains that content) or a bundle whose
champion decision was not made (it is not trained again: the gate runs with the next new content).

The status file (``trainer-status.json`` in the state directory, replaced atomically at every change) holds
the state (:class:`State`), the heartbeat ``heartbeat_at`` (rewritten at every poll, and every ``poll_s``
by a thread while a changed table is read or trained on), the last poll, the table signal last handled,
the content last trained on and its version, and the last error. :func:`check_status` is the container
healthcheck's test (``clientml train-status``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Any

import pandas as pd
from clientml_de.errors import WarehouseError
from clientml_de.files import atomic_file

from clientml_mle.features import TableSignal, redact_url, table_signal, training_frame
from clientml_mle.pointers import BundleIntegrityError
from clientml_mle.retrain import (
    RetrainRequest,
    decide,
    describe_training,
    mark_handled,
    pending_requests,
    trained_version,
)
from clientml_mle.train import training_fingerprint
from clientml_mle.trainable import TrainingDataError

log = logging.getLogger(__name__)

STATUS_FILE = "trainer-status.json"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# A training's summary (``TrainResult.summary()``: ``version``, ``training_data.fingerprint``, ...).
TrainFunction = Callable[[pd.DataFrame], Mapping[str, Any]]
# Failures whose message says it all; anything else is logged with its traceback (it may be a bug).
_EXPLAINED = (TrainingDataError, WarehouseError, BundleIntegrityError, TimeoutError, ValueError)


class State(StrEnum):
    """What the trainer is doing, as the status file says."""

    WAITING = "waiting"  # feature_store does not exist yet, or the warehouse has not been reachable yet
    TRAINING = "training"
    IDLE = "idle"  # the table's content is trained on (by this loop or by a bundle already there)
    FAILED = "failed"  # the last poll or training failed: last_error says why
    STOPPED = "stopped"  # the loop has ended


class WatchStopped(BaseException):
    """Raised by a stop signal in the main thread to interrupt a poll or a training.

    A ``BaseException``, like ``KeyboardInterrupt``, so that no ``except Exception`` on the way swallows it.
    """


class StatusError(Exception):
    """The trainer's status file is missing or unreadable, its heartbeat is stale, or the trainer stopped."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Status:
    """The status file's content; times are ISO 8601 in UTC."""

    state: State
    warehouse: str  # the URL, password redacted
    pid: int
    started_at: str
    heartbeat_at: str
    last_poll_at: str | None = None
    last_signal: dict[str, Any] | None = None  # the table signal whose content was last handled
    training_started_at: str | None = None
    last_fingerprint: str | None = None  # the content last trained on (or found trained in a bundle)
    last_version: str | None = None  # the bundle trained on it
    last_trained_at: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None


def write_status(path: Path, status: Status) -> None:
    """Replace the status file atomically (a reader sees the old or the new one). Raises ``OSError``."""
    with atomic_file(path) as handle:
        handle.write((json.dumps(asdict(status), indent=2) + "\n").encode())


def check_status(path: Path, max_age_s: float, *, now: datetime | None = None) -> dict[str, Any]:
    """The status in ``path`` with ``heartbeat_age_s`` added, when the trainer is alive (the healthcheck).

    Raises:
        StatusError: no status file, an unreadable one, a trainer that stopped, or a heartbeat older than
            ``max_age_s`` seconds (the loop is stuck or gone); the message says which.
    """
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
        beat = datetime.fromisoformat(status["heartbeat_at"])
        age = ((now or datetime.now(UTC)) - beat).total_seconds()  # TypeError: a time without its zone
    except FileNotFoundError:
        raise StatusError(f"{path}: no trainer status (clientml train --watch has not started here)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StatusError(f"{path}: unreadable trainer status: {exc}") from None
    if status.get("state") == State.STOPPED:
        raise StatusError(f"the trainer stopped (last heartbeat {beat.isoformat()})")
    if age > max_age_s:
        raise StatusError(
            f"the trainer's heartbeat is {age:.0f} s old (more than {max_age_s:g} s), state {status.get('state')!r}: "
            "it is stuck or gone"
        )
    return {**status, "heartbeat_age_s": round(age, 3)}


class Watcher:
    """Trains on each new content of ``feature_store`` (module docstring).

    ``train`` trains on a training frame and returns its summary; ``stop`` ends :meth:`run` (set by the
    stop signals when :meth:`run` handles them).
    """

    def __init__(
        self,
        warehouse_url: str,
        models_dir: Path,
        train: TrainFunction,
        status_path: Path,
        *,
        poll_s: float,
        stop: threading.Event | None = None,
    ) -> None:
        """A watcher that has not looked yet; :meth:`run` or :meth:`poll` start it.

        Raises:
            ValueError: ``poll_s`` is not a positive number of seconds.
        """
        if not poll_s > 0:
            raise ValueError(f"the poll interval must be positive, not {poll_s:g} s")
        self.warehouse_url = warehouse_url
        self.models_dir = Path(models_dir)
        self.status_path = status_path
        self.poll_s = poll_s
        self.stop = stop or threading.Event()
        self._train = train
        started = _now()
        self.status = Status(State.WAITING, redact_url(warehouse_url), os.getpid(), started, started)
        self._lock = threading.Lock()  # the heartbeat thread and the loop both rewrite the status
        self._signal: TableSignal | None = None  # the signal of the content last handled
        self._handled: str | None = None  # the fingerprint of the content last handled
        self._content_state = State.WAITING  # IDLE or FAILED once content was handled
        self._seen_table = False
        self._sleeping = False
        self._stopped_by: str | None = None

    # --- the loop ----------------------------------------------------------------------------------------

    def run(self, *, handle_signals: bool = False) -> None:
        """Poll until :attr:`stop` is set; the status says ``stopped`` at the end.

        With ``handle_signals`` (main thread only), SIGTERM and SIGINT stop it too, at once (module
        docstring), and their previous handlers are restored at the end.
        """
        previous: dict[signal.Signals, Any] = {}
        try:
            if handle_signals:
                for stop_signal in STOP_SIGNALS:
                    previous[stop_signal] = signal.signal(stop_signal, self._on_signal)
            log.info(
                "watching feature_store in %s every %g s; status in %s",
                self.status.warehouse,
                self.poll_s,
                self.status_path,
            )
            while not self.stop.is_set():
                try:
                    self.poll()
                except Exception as exc:  # the service outlives any one poll: the next one tries again
                    self._poll_failed(exc)
                self._sleeping = True
                try:
                    self.stop.wait(self.poll_s)
                finally:
                    self._sleeping = False
        except WatchStopped:
            log.info("%s: interrupted while %s", self._stopped_by, self.status.state)
        finally:
            for stop_signal, handler in previous.items():
                signal.signal(stop_signal, handler)
            if self._stopped_by:
                log.info("%s: stopped", self._stopped_by)
            self._update(state=State.STOPPED)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # No logging here: a handler interrupting a write to the log stream would write reentrantly.
        if self.stop.is_set():
            return  # a second signal while stopping: the first one is being handled
        self._stopped_by = signal.Signals(signum).name
        self.stop.set()
        if not self._sleeping:  # a sleep ends by itself once stop is set; work has to be interrupted
            raise WatchStopped(self._stopped_by)

    def poll(self) -> None:
        """One look at the table: trains when its content is new (module docstring).

        Raises:
            clientml_de.warehouse.WarehouseError: the warehouse cannot be read (what the engine raises
                otherwise); a failed training is not raised but recorded.
        """
        self._update(last_poll_at=_now())
        current = table_signal(self.warehouse_url)
        if current is None:
            log.info(
                "waiting for table 'feature_store' in warehouse %s (checking every %g s)",
                self.status.warehouse,
                self.poll_s,
            )
            self._update(state=State.WAITING)
            return
        self._seen_table = True
        pending = pending_requests(self.warehouse_url)
        if current == self._signal and not pending:
            self._update(state=self._content_state)
            return
        with self._heartbeat():
            self._look_at(current, pending)

    def _look_at(self, current: TableSignal, pending: list[RetrainRequest]) -> None:
        frame = training_frame(self.warehouse_url)
        fingerprint = training_fingerprint(frame)
        unchanged = fingerprint == self._handled
        version = None if unchanged else trained_version(self.models_dir, fingerprint)
        # Recorded only once nothing can fail before the content is handled: after a failed read, the next
        # poll reads again; from here on, the outcome (a failed training included) is kept for this signal.
        self._signal = current
        self._update(last_signal=asdict(current))
        short = fingerprint[:12]
        already = None
        if unchanged:
            how = f"trained bundle {self.status.last_version}" if self._content_state == State.IDLE else "it failed"
            already = f"this trainer handled this content already ({how})"
        elif version is not None:
            already = f"bundle {version} was trained on this content"
        train_now, why = decide(pending, already)
        if train_now:
            outcome = self._train_on(frame, fingerprint, why)
        elif unchanged:
            log.info("feature_store changed but its content did not (fingerprint %s): nothing to train", short)
            self._update(state=self._content_state)
            outcome = why
        else:
            log.info("bundle %s was trained on this content (fingerprint %s): not training again", version, short)
            self._handled, self._content_state = fingerprint, State.IDLE
            self._update(state=State.IDLE, last_fingerprint=fingerprint, last_version=version)
            outcome = why
        if pending:
            ids = ", ".join(r.request_id for r in pending)
            log.info("retraining request(s) %s handled: %s", ids, outcome)
            mark_handled(self.warehouse_url, pending, outcome)

    def _train_on(self, frame: pd.DataFrame, fingerprint: str, why: str) -> str:
        """Train on ``frame`` (content ``fingerprint``) because of ``why``; return the outcome in words."""
        short = fingerprint[:12]
        log.info("training on feature_store content %s (%d labeled rows): %s", short, len(frame), why)
        self._update(state=State.TRAINING, training_started_at=_now())
        # Handled whatever the outcome: content that failed to train is not tried again until it changes.
        self._handled = fingerprint
        try:
            summary = self._train(frame)
        except Exception as exc:  # too few labels, a lock or MLflow timeout, ...: the loop waits for new content
            log.error(
                "training failed on content %s (not retried until the content changes): %s",
                short,
                exc,
                exc_info=not isinstance(exc, _EXPLAINED),
            )
            self._content_state = State.FAILED
            self._update(state=State.FAILED, last_error=f"training failed: {exc}", last_error_at=_now())
            return f"training failed: {exc}"
        recorded = summary.get("training_data", {}).get("fingerprint")
        if recorded != fingerprint:
            log.warning("the bundle records fingerprint %s, not %s: a restart would train again", recorded, short)
        version = str(summary.get("version"))
        outcome = describe_training(summary)[0]
        log.info("%s (content %s)", outcome, short)
        self._content_state = State.IDLE
        self._update(state=State.IDLE, last_fingerprint=fingerprint, last_version=version, last_trained_at=_now())
        return outcome

    def _poll_failed(self, exc: Exception) -> None:
        log.error(
            "cannot read feature_store from warehouse %s (trying again in %g s): %s",
            self.status.warehouse,
            self.poll_s,
            exc,
            exc_info=not isinstance(exc, _EXPLAINED),
        )
        # Before the table was ever seen, an unreachable warehouse is one that is still starting.
        state = State.FAILED if self._seen_table else State.WAITING
        self._update(state=state, last_error=f"poll failed: {exc}", last_error_at=_now())

    # --- the status file -----------------------------------------------------------------------------------

    def _update(self, **changes: Any) -> None:
        """Apply ``changes`` and the heartbeat to the status and write it (a write error is only logged)."""
        with self._lock:
            self.status = replace(self.status, heartbeat_at=_now(), **changes)
            try:
                write_status(self.status_path, self.status)
            except OSError as exc:  # the healthcheck then sees a stale heartbeat, which is the right answer
                log.warning("cannot write the trainer status %s: %s", self.status_path, exc)

    @contextlib.contextmanager
    def _heartbeat(self) -> Iterator[None]:
        """Keep the heartbeat fresh (every ``poll_s``) while the block reads or trains, however long it takes."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.poll_s):
                self._update()

        thread = threading.Thread(target=beat, name="trainer-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
