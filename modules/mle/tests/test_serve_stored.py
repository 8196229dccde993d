"""The fast path stored in the bundle at training (``fastpath.npz``): the API serves it without the model,
only for the bundle it was written for (another model, format or library versions: compiled anew), never
when altered (the bundle's hashes refuse it; re-sealed stages that disagree with the model's stored answers
fail verification and the model is compiled instead), and not before its verification has passed, at
start as in a hot swap."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clientml_mle.bundle import save_bundle
from clientml_mle.estimators import make_encoder
from clientml_mle.manifest import DIGEST_CHARS, FASTPATH_FILE, content_digest, sha256
from clientml_mle.pointers import BundleIntegrityError
from clientml_mle.schema import coerce_frame
from clientml_mle.serve import reload
from clientml_mle.serve.app import create_app
from clientml_mle.serve.fastpath import stored
from fastapi.testclient import TestClient
from serve_fixtures import ServeWorld, publish
from serve_models import lightgbm
from sklearn.pipeline import Pipeline

POLL_S = 0.05
TIMEOUT_S = 60.0
# What a worker serving a stored fast path must not import (the model's libraries: memory and start time).
# (numba imports scipy's core itself, not scipy.special nor scipy.stats.)
MODEL_LIBRARIES = ("sklearn", "pandas", "scipy.special", "scipy.stats", "skops", "lightgbm", "ibis")


def edit_stored(data: bytes, change: Callable[[dict[str, Any], dict[str, np.ndarray]], None]) -> bytes:
    """``fastpath.npz`` bytes after ``change(header, arrays)``."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(arrays.pop("header").tobytes())
    change(header, arrays)
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def reseal(bundle_dir: Path, models_dir: Path, files: dict[str, bytes]) -> Path:
    """A copy of the bundle in ``models_dir`` with ``files`` replaced and its manifest made anew for them:
    a consistent bundle of another version, as one written by hand would be."""
    raw = json.loads((bundle_dir / "manifest.json").read_bytes())
    for rel, data in files.items():
        raw["files"][rel], raw["file_sizes"][rel] = sha256(data), len(data)
    raw["version"] = f"{raw['version'].rsplit('-', 1)[0]}-{content_digest(raw)[:DIGEST_CHARS]}"
    target = models_dir / raw["version"]
    shutil.copytree(bundle_dir, target)
    for rel, data in files.items():
        (target / rel).write_bytes(data)
    (target / "manifest.json").write_text(json.dumps(raw, indent=2))
    return target


def source_of(bundle_dir: Path) -> tuple[str, Any]:
    """Where the predictor :func:`reload.load_predictor` gives came from (stored or compiled), and it."""
    _, predictor = reload.load_predictor(bundle_dir, 10_000)
    return predictor.verified["source"], predictor


def assert_serves_the_model(predictor: Any, world: ServeWorld) -> None:
    records = world.records(300)
    assert np.max(np.abs(predictor.predict_records(records) - world.reference(records))) <= 1e-9


@pytest.fixture
def world_bundle(serve_world: ServeWorld) -> Path:
    return serve_world.bundle.path


def test_the_stored_fast_path_serves_without_the_models_libraries(world_bundle: Path, serve_world: ServeWorld) -> None:
    assert (world_bundle / FASTPATH_FILE).is_file()
    source, predictor = source_of(world_bundle)
    assert source == "stored"
    assert predictor.verified["scorer"] == "compiled-trees" and predictor.explain_kind == "lightgbm-pred-contrib"
    assert_serves_the_model(predictor, serve_world)
    code = (
        "import sys; from pathlib import Path; from clientml_mle.serve.reload import load_predictor; "
        "_, p = load_predictor(Path(sys.argv[1]), 100); "
        "v = p.validator.validate_records([dict.fromkeys(f.name for f in p.features)]); "
        "p.top_contributions(p.encode(v), [{}]); "
        f"print(p.verified['source'], sorted(m for m in {MODEL_LIBRARIES!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(world_bundle)], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["stored", "[]"], done.stderr[-2000:]


def test_an_altered_stored_fast_path_is_refused_before_it_is_read(
    world_bundle: Path, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[bytes] = []
    monkeypatch.setattr(reload, "load_stored", lambda data, *args: read.append(data))
    copy = models / world_bundle.name
    shutil.copytree(world_bundle, copy)
    data = bytearray((copy / FASTPATH_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / FASTPATH_FILE).write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError, match=rf"{FASTPATH_FILE}: changed since the bundle was written"):
        reload.load_predictor(copy, 100)
    (copy / FASTPATH_FILE).unlink()  # nor can it be removed: the manifest lists it
    with pytest.raises(BundleIntegrityError, match=rf"{FASTPATH_FILE}: missing"):
        reload.load_predictor(copy, 100)
    assert read == []


def test_a_stored_fast_path_of_another_model_is_not_used(
    world_bundle: Path, models: Path, serve_world: ServeWorld, tmp_path: Path
) -> None:
    features = list(serve_world.bundle.manifest.features)
    labeled = serve_world.store[serve_world.store["label"].notna()]
    other = Pipeline([("encode", make_encoder(features)), ("model", lightgbm())])
    other.fit(coerce_frame(labeled, features), labeled["label"].astype(int))
    training = {"table": "feature_store", "rows": len(labeled), "fingerprint": "other"}
    other_dir = save_bundle(tmp_path / "other", other, features, 0.5, {}, training, "other")
    foreign = (other_dir / FASTPATH_FILE).read_bytes()
    source, predictor = source_of(reseal(world_bundle, models, {FASTPATH_FILE: foreign}))
    assert source == "compiled"
    assert_serves_the_model(predictor, serve_world)


@pytest.mark.parametrize("change", ["format", "libraries"])
def test_another_format_or_library_versions_compile_the_model_anew(
    change: str, world_bundle: Path, serve_world: ServeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    if change == "format":
        monkeypatch.setattr(stored, "FORMAT", "clientml-fastpath/0")
    else:
        installed = stored._libraries()
        monkeypatch.setattr(stored, "_libraries", lambda: {**installed, "numpy": "0.0.1"})
    source, predictor = source_of(world_bundle)
    assert source == "compiled"
    assert_serves_the_model(predictor, serve_world)


def _shift_leaves(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    arrays[header["scorer"]["forest"]["value"]] = arrays[header["scorer"]["forest"]["value"]] + 0.01


def _shift_answers(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    arrays[header["probabilities"]] = arrays[header["probabilities"]] * 0.99


def _drop_a_table_row(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    table = header["encoder"]["blocks"][0]["table"]
    arrays[table] = arrays[table][:-1]


@pytest.mark.parametrize("change", [_shift_leaves, _shift_answers, _drop_a_table_row])
def test_stages_that_disagree_with_the_models_stored_answers_are_not_used(
    change: Callable[[dict[str, Any], dict[str, np.ndarray]], None],
    world_bundle: Path,
    models: Path,
    serve_world: ServeWorld,
) -> None:
    """Re-sealed, so the hashes hold: verification against the model's stored answers refuses them."""
    edited = edit_stored((world_bundle / FASTPATH_FILE).read_bytes(), change)
    source, predictor = source_of(reseal(world_bundle, models, {FASTPATH_FILE: edited}))
    assert source == "compiled"
    assert_serves_the_model(predictor, serve_world)


class Gate:
    """Holds the stored fast path's verification (``stored.check``) until released."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.original = stored.check

    def __call__(self, *args: Any) -> Any:
        self.entered.set()
        assert self.release.wait(TIMEOUT_S)
        return self.original(*args)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    held = Gate()
    monkeypatch.setattr(stored, "check", held)
    yield held
    held.release.set()


def _wait(client: TestClient, done: Callable[[Any], bool]) -> Any:
    deadline = time.monotonic() + TIMEOUT_S
    while not done(response := client.get("/health/ready")):
        assert time.monotonic() < deadline, response.text
        time.sleep(POLL_S)
    return response


def test_not_ready_until_the_stored_fast_path_is_verified(
    gate: Gate, world_bundle: Path, models: Path, serve_world: ServeWorld
) -> None:
    version = publish(models, world_bundle)
    with TestClient(create_app(models_dir=models, reload_poll_s=POLL_S)) as client:
        assert gate.entered.wait(TIMEOUT_S)
        for _ in range(5):  # verification in progress: neither ready nor serving
            loading = client.get("/health/ready")
            assert (loading.status_code, loading.json()["status"]) == (503, "loading")
            assert client.post("/v1/predict", json={"records": serve_world.records(1)}).status_code == 503
            time.sleep(POLL_S)
        gate.release.set()
        ready = _wait(client, lambda r: r.status_code == 200).json()
        assert (ready["model"]["version"], ready["verified"]["source"]) == (version, "stored")


def test_a_hot_swap_serves_the_new_version_only_once_verified(
    gate: Gate, bundle_versions: list[Path], models: Path, serve_world: ServeWorld
) -> None:
    gate.release.set()  # the first version loads at once
    first = publish(models, bundle_versions[0])
    with TestClient(create_app(models_dir=models, reload_poll_s=POLL_S)) as client:
        _wait(client, lambda r: r.status_code == 200)
        gate.entered.clear()
        gate.release.clear()
        second = publish(models, bundle_versions[1])
        assert gate.entered.wait(TIMEOUT_S)
        for _ in range(5):  # the second version is being verified: the first one serves meanwhile
            assert client.get("/health/ready").json()["model"]["version"] == first
            body = client.post("/v1/predict", json={"records": serve_world.records(1)}).json()
            assert body["model"]["version"] == first
            time.sleep(POLL_S)
        gate.release.set()
        ready = _wait(client, lambda r: r.json()["model"]["version"] == second).json()
        assert ready["verified"]["source"] == "stored"
