"""Model bundles: round trip, integrity checks, trusted types, the LATEST pointer."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clientml_mle.bundle import ENCODER_FILE, MODEL_FILE, UntrustedModelError, load_bundle, save_bundle, verify_bundle
from clientml_mle.manifest import FASTPATH_FILE, PROFILE_FILE
from clientml_mle.pointers import (
    CHAMPION_FILE,
    LATEST_FILE,
    MANIFEST_FILE,
    BundleIntegrityError,
    list_versions,
    read_latest,
    read_pointer,
    set_pointer,
)
from clientml_mle.schema import FeatureSpec
from clientml_mle.train import TrainResult
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import Pipeline

TRAINING_DATA = {"table": "feature_store", "rows": 4, "fingerprint": "0" * 64}
SPECS = [FeatureSpec(name="x", type="number", nullable=False)]


def _tiny_model() -> Pipeline:
    x = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    encoder = ColumnTransformer([("numeric", "passthrough", ["x"])])
    return Pipeline([("encoder", encoder), ("classifier", DummyClassifier())]).fit(x, [0, 1, 0, 1])


def _save_tiny(models_dir: Path, **kwargs: object) -> Path:
    return save_bundle(models_dir, _tiny_model(), SPECS, 0.5, {"roc_auc": 0.5}, TRAINING_DATA, "tiny", **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def bundle_copy(trained: TrainResult, tmp_path: Path) -> Path:
    """A private copy of the trained bundle, free to tamper with."""
    return Path(shutil.copytree(trained.bundle_path, tmp_path / trained.bundle_path.name))


def test_round_trip_gives_the_same_predictions(trained: TrainResult, frame: pd.DataFrame) -> None:
    bundle = load_bundle(trained.bundle_path.parent)  # through LATEST
    assert bundle.path == trained.bundle_path
    assert bundle.version == trained.version
    assert trained.model is not None
    expected = trained.model.predict_proba(frame[bundle.feature_names])[:, 1]
    np.testing.assert_array_equal(bundle.predict_proba(frame), expected)
    np.testing.assert_array_equal(bundle.predict(frame), (expected >= bundle.threshold).astype(int))
    assert type(bundle.encoder) is type(bundle.model.steps[0][1])
    np.testing.assert_array_equal(
        bundle.encoder.transform(frame[bundle.feature_names]), bundle.model.steps[0][1].transform(frame)
    )


def test_manifest_describes_the_bundle(trained: TrainResult) -> None:
    manifest = json.loads((trained.bundle_path / MANIFEST_FILE).read_text())
    assert manifest["name"] == trained.name and manifest["version"] == trained.version
    assert [f["name"] for f in manifest["features"]] == [f.name for f in trained.features]
    segment = next(f for f in manifest["features"] if f["name"] == "segment")
    assert segment["type"] == "category" and segment["categories"] == sorted(segment["categories"])
    assert manifest["threshold"] == trained.threshold
    assert manifest["metrics"]["roc_auc"] == pytest.approx(trained.evaluation.roc_auc)
    assert manifest["training_data"]["table"] == "feature_store"
    assert manifest["training_data"]["rows"] == trained.training_data["rows"]
    assert len(manifest["training_data"]["fingerprint"]) == 64
    assert {"python", "scikit-learn", "lightgbm", "numpy", "pandas", "skops"} <= set(manifest["libraries"])
    on_disk = {p.name for p in trained.bundle_path.iterdir()} - {MANIFEST_FILE}
    expected = {MODEL_FILE, ENCODER_FILE, FASTPATH_FILE, PROFILE_FILE, "evaluation.json"}
    assert set(manifest["files"]) == on_disk == expected
    datetime.fromisoformat(manifest["created_at"])


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-10])


def _edit_manifest(bundle: Path) -> None:
    path = bundle / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest["threshold"] = 0.01
    path.write_text(json.dumps(manifest, indent=2))


TAMPERING: dict[str, tuple[Callable[[Path], None], str]] = {
    "changed byte in model": (lambda b: _flip_byte(b / MODEL_FILE), rf"{MODEL_FILE}: changed"),
    "changed byte in encoder": (lambda b: _flip_byte(b / ENCODER_FILE), rf"{ENCODER_FILE}: changed"),
    "changed extra file": (lambda b: _flip_byte(b / "evaluation.json"), r"evaluation\.json: changed"),
    "changed stored fast path": (lambda b: _flip_byte(b / FASTPATH_FILE), rf"{FASTPATH_FILE}: changed"),
    "changed reference profile": (lambda b: _flip_byte(b / PROFILE_FILE), rf"{PROFILE_FILE}: changed"),
    "truncated model": (lambda b: _truncate(b / MODEL_FILE), rf"{MODEL_FILE}: truncated"),
    "missing encoder": (lambda b: (b / ENCODER_FILE).unlink(), rf"{ENCODER_FILE}: missing"),
    "extra unlisted file": (lambda b: (b / "backdoor.pkl").write_bytes(b"x"), r"backdoor\.pkl: unlisted"),
    "extra file in a subdirectory": (
        lambda b: (b / "sub").mkdir() or (b / "sub" / "x.skops").write_bytes(b"x"),
        r"sub/x\.skops: unlisted",
    ),
    "edited manifest": (_edit_manifest, rf"{MANIFEST_FILE}: changed"),
    "manifest not JSON": (lambda b: (b / MANIFEST_FILE).write_text("{"), rf"{MANIFEST_FILE}: not valid JSON"),
    "missing manifest": (lambda b: (b / MANIFEST_FILE).unlink(), "neither a bundle"),
}


@pytest.mark.parametrize("kind", list(TAMPERING))
def test_tampering_is_refused_before_loading(kind: str, bundle_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import skops.io

    tamper, message = TAMPERING[kind]
    tamper(bundle_copy)

    def no_deserialising(*args: object, **kwargs: object) -> None:
        raise AssertionError("deserialised before the integrity checks")

    monkeypatch.setattr(skops.io, "loads", no_deserialising)
    errors: tuple[type[Exception], ...] = (BundleIntegrityError, FileNotFoundError)
    with pytest.raises(errors, match=message):
        load_bundle(bundle_copy)
    with pytest.raises(errors, match=message):
        verify_bundle(bundle_copy)


def test_an_untouched_copy_loads(bundle_copy: Path) -> None:
    assert verify_bundle(bundle_copy).version == bundle_copy.name
    load_bundle(bundle_copy)


class _Custom(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """A type outside the allow-list."""

    def fit(self, x: object, y: object = None) -> _Custom:
        return self

    def transform(self, x: pd.DataFrame) -> pd.DataFrame:
        return x


def test_untrusted_types_are_refused(tmp_path: Path) -> None:
    x = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    model = Pipeline([("encoder", _Custom()), ("classifier", DummyClassifier())]).fit(x, [0, 1, 0, 1])
    custom = f"{_Custom.__module__}.{_Custom.__qualname__}"
    with pytest.raises(UntrustedModelError, match="does not trust"):
        save_bundle(tmp_path, model, SPECS, 0.5, {}, TRAINING_DATA, "custom")
    assert list_versions(tmp_path) == []
    from clientml_mle.bundle import TRUSTED_TYPES

    path = save_bundle(tmp_path, model, SPECS, 0.5, {}, TRAINING_DATA, "custom", trusted_types=TRUSTED_TYPES | {custom})
    with pytest.raises(UntrustedModelError, match=r"refusing to load untrusted types .*_Custom"):
        load_bundle(path)
    assert isinstance(load_bundle(path, trusted_types=TRUSTED_TYPES | {custom}).model, Pipeline)


def test_latest_moves_atomically_to_the_newest(tmp_path: Path) -> None:
    models = tmp_path / "models"
    assert read_latest(models) is None
    first = _save_tiny(models)
    assert read_latest(models) == first.name
    second = _save_tiny(models)
    assert second.name > first.name
    assert read_latest(models) == second.name
    assert load_bundle(models).version == second.name
    assert list_versions(models) == [first.name, second.name]

    # A bundle stamped earlier (e.g. a slow concurrent run) never moves the pointer back.
    older = _save_tiny(models, created_at=datetime(2001, 1, 1, tzinfo=UTC))
    assert read_latest(models) == second.name
    assert list_versions(models)[0] == older.name

    # A failed save leaves neither a bundle nor a temporary directory, and the pointer unchanged.
    with pytest.raises(FileNotFoundError):
        _save_tiny(models, extra_files={"notes.txt": tmp_path / "absent.txt"})
    assert read_latest(models) == second.name
    assert len(list_versions(models)) == 3
    leftovers = [p.name for p in models.iterdir() if p.name.startswith(".tmp")]
    assert leftovers == []
    assert (models / LATEST_FILE).read_text().strip() == second.name


def test_champion_pointer(tmp_path: Path) -> None:
    models = tmp_path / "models"
    first = _save_tiny(models)
    second = _save_tiny(models)
    assert read_pointer(models, CHAMPION_FILE) is None
    with pytest.raises(FileNotFoundError, match="CHAMPION pointer"):
        load_bundle(models, pointer=CHAMPION_FILE)
    assert set_pointer(models, first.name, CHAMPION_FILE)
    assert not set_pointer(models, first.name, CHAMPION_FILE)
    assert load_bundle(models, pointer=CHAMPION_FILE).version == first.name
    assert load_bundle(models).version == second.name
    # LATEST only ever moves forward through save_bundle; set_pointer can be told the same.
    assert not set_pointer(models, first.name, LATEST_FILE, only_forward=True)
    with pytest.raises(BundleIntegrityError, match="not a bundle there"):
        set_pointer(models, "20990101T000000.000000Z-000000000000", CHAMPION_FILE)
    with pytest.raises(ValueError, match="unknown pointer"):
        set_pointer(models, first.name, "../LATEST")


def test_dangling_or_bad_pointer_is_reported(tmp_path: Path) -> None:
    models = tmp_path / "models"
    bundle = _save_tiny(models)
    shutil.rmtree(bundle)
    with pytest.raises(BundleIntegrityError, match="points to"):
        load_bundle(models)
    (models / LATEST_FILE).write_text("../../etc\n")
    with pytest.raises(BundleIntegrityError, match="not a bundle version"):
        load_bundle(models)
    with pytest.raises(FileNotFoundError, match="no such models directory"):
        load_bundle(tmp_path / "nowhere")


def test_feature_frame_accepts_nulls(trained: TrainResult) -> None:
    bundle = load_bundle(trained.bundle_path)
    names = bundle.feature_names
    records = [
        dict.fromkeys(names),  # every feature null
        {},  # every feature missing
        {"segment": "a-segment-never-seen", "tenure_days": "120", "unknown_column": 1},
        {"segment": "consumer", "tenure_days": 400, "days_since_last_sale": None, "annual_income": 52000.5},
    ]
    frame = bundle.feature_frame(records)
    assert list(frame.columns) == names and len(frame) == 4
    for spec in bundle.manifest.features:
        assert frame[spec.name].dtype == (object if spec.type == "category" else np.float64)
    proba = bundle.predict_proba(frame)
    assert proba.shape == (4,) and np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_array_equal(bundle.predict_proba(pd.DataFrame(records)), proba)
    assert bundle.predict_proba(bundle.feature_frame([])).shape == (0,)
    with pytest.raises(ValueError, match="tenure_days"):
        bundle.feature_frame([{"tenure_days": "long"}])


def test_save_validates_inputs(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="Pipeline"):
        save_bundle(tmp_path, DummyClassifier(), SPECS, 0.5, {}, TRAINING_DATA, "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="probability"):
        save_bundle(tmp_path, _tiny_model(), SPECS, 1.5, {}, TRAINING_DATA, "x")
    with pytest.raises(BundleIntegrityError, match="relative path"):
        _save_tiny(tmp_path, extra_files={"../escape.txt": tmp_path})
    metrics_with_nan = {"roc_auc": float("nan"), "nested": {"x": np.float64(1.5)}}
    path = save_bundle(tmp_path, _tiny_model(), SPECS, 0.5, metrics_with_nan, TRAINING_DATA, "x")
    assert load_bundle(path).manifest.metrics == {"roc_auc": None, "nested": {"x": 1.5}}


_SKOPS_BESIDE_AIRFLOW = """
import airflow.serialization.serde, airflow.utils.timezone  # modules with deprecated aliases, as in a DAG task
import numpy as np
from clientml_mle.bundle import untrusted_types
from sklearn.linear_model import LogisticRegression
model = LogisticRegression().fit(np.random.default_rng(0).random((20, 2)), [0, 1] * 10)
print(untrusted_types(model, frozenset()))
"""


@pytest.mark.airflow
def test_skops_is_quiet_beside_airflow() -> None:
    # skops finds the module of each function without __module__ (scipy's ufuncs, at its first import too) by
    # getattr on every loaded module: beside Airflow's deprecated aliases that printed ~1,160 warnings per
    # training process in the loop.
    result = subprocess.run([sys.executable, "-c", _SKOPS_BESIDE_AIRFLOW], capture_output=True, text=True, check=True)
    assert "is deprecated" not in result.stderr + result.stdout
