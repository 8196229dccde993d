"""``ModelWatcher``: the thread of each worker that serves its models directory's champion, swapping in
a new one without a restart.

It reads the models directory's pointer (``CHAMPION``, else ``LATEST``:
:func:`clientml_mle.pointers.serving_pointer`) at start, then every ``poll_s`` seconds. When the pointer
names a version other than the one served, the bundle is loaded (:func:`load_predictor`: every hash
checked, then the fast path stored in the bundle rebuilt and verified, or, without one, the model
deserialised, its fast path compiled and verified), all in this thread, never on the event loop (which keeps
answering with the current model), then swapped in by :meth:`~clientml_mle.serve.deps.ServeState.activate`:
a request that already took the old predictor finishes with it. A bundle that fails is refused: the current
model keeps serving (before the first one, the API stays not ready with the reason), the refusal is logged
and shown (``refused`` in ``/v1/model`` and ``/health/ready``), and the version is not tried again until
the pointer moves. A bundle's own directory, or ``poll_s`` 0, is loaded once and not watched.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from clientml_mle.manifest import FASTPATH_FILE, read_bundle
from clientml_mle.pointers import MANIFEST_FILE, BundleIntegrityError, serving_pointer
from clientml_mle.serve.deps import Refusal, ServeState
from clientml_mle.serve.fastpath import VerifiedPredictor, compile_bundle, verify
from clientml_mle.serve.fastpath.stored import StoredFastPathError
from clientml_mle.serve.fastpath.stored import load as load_stored

log = logging.getLogger(__name__)

# How long shutdown waits for the thread: a load still running after that is abandoned (a daemon thread
# never holds up the process's exit), so SIGTERM ends the server in seconds even mid-verification.
STOP_TIMEOUT_S = 2.0


def load_predictor(bundle_dir: Path, max_records: int) -> tuple[Any, VerifiedPredictor]:
    """A bundle's manifest and verified predictor: its stored fast path when there is one that serves here
    (nothing but numpy, numba and LightGBM's C library needed), else compiled from its model.

    Every hash is checked first. Raises BundleIntegrityError (an altered bundle), UntrustedModelError,
    UnsupportedModelError or VerificationError (the model cannot be served).
    """
    manifest, contents = read_bundle(bundle_dir)
    stored = contents.get(FASTPATH_FILE)
    if stored is not None:
        try:
            return manifest, load_stored(stored, manifest, manifest.files[manifest.model_file], max_records)
        except StoredFastPathError as exc:
            log.warning(
                "bundle %s: the stored fast path cannot serve (%s); compiling the model's", manifest.version, exc
            )
    else:
        log.info("bundle %s has no stored fast path: compiling the model's", manifest.version)
    # scikit-learn, pandas and skops are imported here only: a stored fast path needs none of them.
    from clientml_mle.bundle import bundle_from_contents

    bundle = bundle_from_contents(bundle_dir, manifest, contents)
    return manifest, verify(compile_bundle(bundle, max_records), bundle)


class ModelWatcher:
    """Serves the bundle of ``path`` into ``state``, following its pointer every ``poll_s`` seconds.

    ``path`` is a models directory, or a bundle's own directory (loaded once: there is no pointer to
    follow). ``poll_s`` 0 loads what the pointer names once, without watching.
    """

    def __init__(self, state: ServeState, path: Path, poll_s: float) -> None:
        self.state = state
        self.path = Path(path)
        self.is_bundle = (self.path / MANIFEST_FILE).is_file()
        self.poll_s = 0.0 if self.is_bundle else poll_s
        self._seen: str | None = None  # what the pointer said at the last look (a version or an error)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clientml-model-watcher", daemon=True)

    @property
    def watching(self) -> bool:
        """Whether the pointer is reread after the first look."""
        return self.poll_s > 0

    def start(self) -> None:
        """Start the thread: the first look at once, then one every ``poll_s`` seconds while watching."""
        self._thread.start()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop watching; wait up to ``timeout_s`` for the thread (a load in progress is abandoned)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        self.check()
        while self.watching and not self._stop.wait(self.poll_s):
            self.check()

    def check(self) -> None:
        """One look: install the bundle the pointer names when it is new, or say why nothing serves."""
        if self.is_bundle:
            self._install(self.path, self.path.name)
            return
        try:
            pointer, version = serving_pointer(self.path)
        except (BundleIntegrityError, OSError) as exc:  # a pointer holding no version, or unreadable
            if self._changed(str(exc)):
                self._refuse(None, str(exc))
            return
        if version is None:
            reason = self._nothing_to_serve()
            if self._changed("") and self.state.model.served is None:  # said once, not at every poll
                log.info("%s", reason)
            self.state.not_ready("waiting" if self.watching else "failed", reason)
            return
        if not self._changed(version):
            return
        served = self.state.model.served
        if served is not None and served.predictor.version == version:
            self.state.refuse(None)  # the pointer is back on the served version: nothing refused stands
            return
        bundle_dir = self.path / version
        if not (bundle_dir / MANIFEST_FILE).is_file():
            self._refuse(version, f"{pointer} names {version}, which is not a bundle in {self.path}")
            return
        self._install(bundle_dir, version)

    def _changed(self, seen: str) -> bool:
        """Whether the pointer says something new (a refused version is retried only after a change)."""
        if seen == self._seen:
            return False
        self._seen = seen
        return True

    def _nothing_to_serve(self) -> str:
        missing = "" if self.path.is_dir() else " (no such directory yet)"
        if self.watching:
            return f"waiting for a champion bundle in {self.path}{missing}: no CHAMPION or LATEST pointer yet"
        if missing:
            return f"no such models directory or bundle: {self.path}"
        return f"no CHAMPION or LATEST pointer in {self.path} (train a model first)"

    def _install(self, bundle_dir: Path, version: str) -> None:
        before = self.state.model.served
        self.state.not_ready("loading", f"loading {version} from {bundle_dir}")
        try:
            self.state.activate(*load_predictor(bundle_dir, self.state.max_records))
        # Whatever makes a bundle unservable (missing or altered files, an untrusted type, a fast path that
        # disagrees with it, ...) refuses that bundle; it must neither stop the current model nor the watching.
        except Exception as exc:
            self._refuse(version, f"{type(exc).__name__}: {exc}", exc)
            return
        if before is not None:
            log.info("model swapped without a restart: %s -> %s", before.predictor.version, version)

    def _refuse(self, version: str | None, reason: str, exc: Exception | None = None) -> None:
        served = self.state.model.served
        if served is not None:
            keeping = f"still serving {served.predictor.version}"
        else:
            keeping = "not ready" + (f", still watching {self.path}" if self.watching else "")
        log.error("model %s refused: %s; %s", version or "pointer", reason, keeping, exc_info=exc)
        self.state.refuse(Refusal(version, reason))
