"""MLflow tracking and model registry, and the champion gate.

Every training run logs its parameters, scalar metrics and the whole bundle directory (artifact path
``bundle``), logs the model as a pyfunc serving that verified bundle, with a signature of the manifest's
feature types (:mod:`clientml_mle.mlflow_model`: ``mlflow.pyfunc.load_model`` and ``mlflow models serve``
take feature-store rows and answer probability and label) and registers it as a new version of the
registered model. Registry stages are not used (deprecated): the alias ``champion`` marks the model to
serve.

Champion rule
-------------
The alias moves to the new version only when it is clearly better on the same evaluation rows::

    lower bound of the new model's bootstrap 95% CI of ROC-AUC  >=  champion's ROC-AUC

where the champion's ROC-AUC is computed by re-scoring the champion's own bundle (downloaded from its run
and verified) on the new run's test rows. If the champion's feature schema is not compatible with those
rows (a feature missing, or categorical where the rows are numeric, or the reverse) or its bundle cannot
be loaded, the models cannot be compared: the new version is promoted only when ``force=True``. With no
champion yet, the new version is promoted. ``force=True`` always promotes (and says so in the reason).

The gate (:meth:`MlflowTracker.gate`) reads the champion, compares, moves the alias and ``CHAMPION`` under
the models directory's exclusive lock, so two trainings gating at once are serialised.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from clientml_de.settings import Settings, disable_telemetry, get_settings
from sklearn.metrics import roc_auc_score

from clientml_mle.bundle import TRUSTED_TYPES, Bundle, library_versions, load_bundle
from clientml_mle.pointers import CHAMPION_FILE, locked, set_pointer
from clientml_mle.schema import FeatureSpec, infer_feature_specs

log = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
BUNDLE_ARTIFACT_PATH = "bundle"
MODEL_ARTIFACT_NAME = "model"
_PIP_PACKAGES = ("scikit-learn", "lightgbm", "skops", "numpy", "pandas", "scipy")


@dataclass(frozen=True)
class ChampionDecision:
    """Whether a new registered version became the champion, and why."""

    promoted: bool
    reason: str
    new_version: str | None
    previous_champion: str | None
    new_roc_auc: float | None = None
    new_roc_auc_ci95_low: float | None = None
    champion_roc_auc: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrackingRecord:
    """What one training run left in MLflow."""

    run_id: str
    experiment_id: str
    model_uri: str
    registered_version: str
    decision: ChampionDecision

    def to_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["decision"] = self.decision.to_dict()
        return payload


def _scalar_params(params: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in params.items():
        if value is None or isinstance(value, str | int | float | bool):
            out[str(key)[:250]] = str(value)[:500]
    return out


def _kind(type_name: str) -> str:
    return "category" if type_name == "category" else "numeric"


def schema_problem(champion: Sequence[FeatureSpec], frame: pd.DataFrame) -> str | None:
    """Why the champion cannot score ``frame`` (a raw feature frame), or ``None`` when it can."""
    missing = [f.name for f in champion if f.name not in frame.columns]
    if missing:
        return f"the evaluation rows lack the champion's features {missing}"
    seen = {s.name: s for s in infer_feature_specs(frame, [f.name for f in champion])}
    clashes = [
        f"{f.name} ({f.type} vs {seen[f.name].type})" for f in champion if _kind(f.type) != _kind(seen[f.name].type)
    ]
    if clashes:
        return f"feature types differ between the champion and the evaluation rows: {clashes}"
    return None


def decide(
    *,
    new_roc_auc: float,
    new_roc_auc_ci95_low: float,
    champion_version: str | None,
    champion_roc_auc: float | None,
    incompatibility: str | None,
    new_version: str | None,
    force: bool = False,
    champion_bundle: str | None = None,
) -> ChampionDecision:
    """Apply the champion rule (see the module docstring). ``champion_version`` is the champion's registered
    version number, ``champion_bundle`` its bundle id (both named in the reason)."""
    promoted, reason = _rule(
        new_roc_auc,
        new_roc_auc_ci95_low,
        champion=champion_version,
        champion_bundle=champion_bundle,
        champion_auc=champion_roc_auc,
        incompatibility=incompatibility,
        force=force,
    )
    return ChampionDecision(
        promoted=promoted,
        reason=reason,
        new_version=new_version,
        previous_champion=champion_version,
        new_roc_auc=new_roc_auc,
        new_roc_auc_ci95_low=new_roc_auc_ci95_low,
        champion_roc_auc=champion_roc_auc,
    )


def _rule(
    new_auc: float,
    new_low: float,
    *,
    champion: str | None,
    champion_bundle: str | None,
    champion_auc: float | None,
    incompatibility: str | None,
    force: bool,
) -> tuple[bool, str]:
    if champion is None:
        return True, "no champion yet: the first version becomes champion"
    # Registered version numbers (MLflow's) and bundle ids (the models directory's) are both named, so
    # that neither is mistaken for the other.
    who = f"registered version {champion}" + (f", bundle {champion_bundle}" if champion_bundle else "")
    if force:
        return True, f"forced promotion over the champion ({who})"
    if incompatibility is not None or champion_auc is None:
        why = incompatibility or "the champion could not be scored"
        return False, f"not comparable with the champion ({who}): {why}; use force to promote"

    def comparison(op: str) -> str:
        return (
            f"ROC-AUC 95% lower bound {new_low:.4f} {op} the champion's ROC-AUC {champion_auc:.4f} on the same "
            f"evaluation rows (new ROC-AUC {new_auc:.4f}; champion: {who})"
        )

    if np.isfinite(new_low) and new_low >= champion_auc:
        return True, comparison(">=")
    return False, comparison("<")


class MlflowTracker:
    """Logs training runs to MLflow, registers each model, and moves the ``champion`` alias by the rule."""

    def __init__(
        self,
        tracking_uri: str,
        model_name: str = "clientml-classifier",
        experiment: str = "clientml",
        artifact_location: Path | str | None = None,
    ) -> None:
        disable_telemetry()  # before MLflow is first imported: it reads the variable then
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.experiment = experiment
        self.artifact_location = artifact_location

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> MlflowTracker:
        """The tracker configured by the settings (``CLIENTML_MLFLOW_*``, ``CLIENTML_MODEL_NAME``)."""
        settings = settings or get_settings()
        return cls(
            tracking_uri=settings.mlflow_tracking_uri,
            model_name=settings.model_name,
            experiment=settings.mlflow_experiment,
            artifact_location=settings.mlflow_artifacts_dir,
        )

    @property
    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def experiment_id(self) -> str:
        client = self.client
        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            return str(found.experiment_id)
        location = None
        if self.artifact_location is not None:
            location = str(self.artifact_location)
            if "://" not in location:
                Path(location).mkdir(parents=True, exist_ok=True)
                location = Path(location).resolve().as_uri()
        try:
            return str(client.create_experiment(self.experiment, artifact_location=location))
        except Exception:  # created concurrently by another run
            found = client.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return str(found.experiment_id)

    def champion_version(self) -> Any | None:
        """The registered version holding the ``champion`` alias, or ``None``."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(self.model_name, CHAMPION_ALIAS)
        except MlflowException:
            return None

    def load_champion_bundle(self, version: Any, dst: Path) -> Bundle:
        """Download the champion's bundle from its run's artifacts and load it (hashes verified)."""
        path = self.client.download_artifacts(version.run_id, BUNDLE_ARTIFACT_PATH, str(dst))
        return load_bundle(path, trusted_types=TRUSTED_TYPES)

    def _score_champion(
        self, eval_frame: pd.DataFrame, eval_labels: np.ndarray
    ) -> tuple[Any | None, float | None, str | None]:
        """The champion's registered version (or None), its ROC-AUC on the rows, and why it has none."""
        champion = self.champion_version()
        if champion is None:
            return None, None, None
        with tempfile.TemporaryDirectory(prefix="clientml-champion-") as tmp:
            try:
                bundle = self.load_champion_bundle(champion, Path(tmp))
            except Exception as exc:
                return champion, None, f"its bundle could not be loaded ({exc})"
            problem = schema_problem(bundle.manifest.features, eval_frame)
            if problem is not None:
                return champion, None, problem
            proba = bundle.predict_proba(eval_frame)
        return champion, float(roc_auc_score(eval_labels, proba)), None

    def gate(
        self,
        *,
        bundle_dir: Path,
        new_version: str,
        eval_frame: pd.DataFrame,
        eval_labels: Any,
        new_roc_auc: float,
        new_roc_auc_ci95_low: float,
        force: bool = False,
    ) -> ChampionDecision:
        """The champion gate for registered version ``new_version`` (whose bundle is ``bundle_dir``).

        Compare-and-promote as one step across processes: under an exclusive lock on the models directory
        (``bundle_dir.parent``, :func:`clientml_mle.pointers.locked`), read the champion (anew, inside the
        lock), score it on ``eval_frame`` (the raw test rows, labels ``eval_labels``), apply the rule, and
        when the new version wins move the ``champion`` alias, then ``CHAMPION`` in the models directory.
        Two trainings gating at once are serialised: the second compares with the first's result, so the
        alias and ``CHAMPION`` always agree. Raises what MLflow raises.
        """
        labels = np.asarray(eval_labels).astype(np.int64)
        with locked(bundle_dir.parent):
            champion, champion_auc, problem = self._score_champion(eval_frame, labels)
            decision = decide(
                new_roc_auc=new_roc_auc,
                new_roc_auc_ci95_low=new_roc_auc_ci95_low,
                champion_version=None if champion is None else str(champion.version),
                champion_bundle=None if champion is None else (champion.tags or {}).get("bundle_version"),
                champion_roc_auc=champion_auc,
                incompatibility=problem,
                new_version=new_version,
                force=force,
            )
            if decision.promoted:
                self.client.set_registered_model_alias(self.model_name, CHAMPION_ALIAS, new_version)
                set_pointer(bundle_dir.parent, bundle_dir.name, CHAMPION_FILE)
        log.info(
            "model %s registered version %s (bundle %s): %s",
            self.model_name,
            new_version,
            bundle_dir.name,
            decision.reason,
        )
        return decision

    def record(
        self,
        *,
        bundle_dir: Path,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        eval_frame: pd.DataFrame,
        eval_labels: Any,
        new_roc_auc: float,
        new_roc_auc_ci95_low: float,
        force: bool = False,
        tags: Mapping[str, str] | None = None,
    ) -> TrackingRecord:
        """Log a run with the bundle and the model (:mod:`clientml_mle.mlflow_model`: a pyfunc serving the
        verified bundle), register it, then apply the champion :meth:`gate`.

        ``eval_frame`` holds the raw test rows (every feature-store column, so an older champion that
        used other features can still be scored) and ``eval_labels`` their labels. The decision is logged
        to the run (``champion_decision.json``, tag ``champion_promoted``) and tagged on the version.
        """
        import mlflow

        from clientml_mle.mlflow_model import log_bundle_model

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        experiment_id = self.experiment_id()
        versions = library_versions()
        pip = [f"{p}=={versions[p]}" for p in _PIP_PACKAGES if p in versions]
        with mlflow.start_run(experiment_id=experiment_id) as run:
            mlflow.set_tags({"bundle_version": bundle_dir.name, **dict(tags or {})})
            mlflow.log_params(_scalar_params(params))
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)})
            mlflow.log_artifacts(str(bundle_dir), artifact_path=BUNDLE_ARTIFACT_PATH)
            info = log_bundle_model(
                bundle_dir, name=MODEL_ARTIFACT_NAME, registered_model_name=self.model_name, pip_requirements=pip
            )
        new_version = str(info.registered_model_version)
        decision = self.gate(
            bundle_dir=bundle_dir,
            new_version=new_version,
            eval_frame=eval_frame,
            eval_labels=eval_labels,
            new_roc_auc=new_roc_auc,
            new_roc_auc_ci95_low=new_roc_auc_ci95_low,
            force=force,
        )
        client = self.client
        client.log_dict(run.info.run_id, decision.to_dict(), "champion_decision.json")
        client.set_tag(run.info.run_id, "champion_promoted", str(decision.promoted).lower())
        client.set_model_version_tag(self.model_name, new_version, "bundle_version", bundle_dir.name)
        client.set_model_version_tag(self.model_name, new_version, "champion_decision", decision.reason[:5000])
        return TrackingRecord(
            run_id=run.info.run_id,
            experiment_id=experiment_id,
            model_uri=str(info.model_uri),
            registered_version=new_version,
            decision=decision,
        )
