"""The work of the ``train_model`` DAG's task, as a plain function that tests call without a scheduler."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from clientml_de.settings import get_settings
from clientml_de.tasks import resolve_warehouse_url
from clientml_mle.retrain import handle_requests

from clientml_ds.trainer import configured_trainer

log = logging.getLogger(__name__)


def train_on_requests(
    warehouse_url: str | None,
    models_dir: str | Path | None,
    search_trials: int | None = None,
    search_seconds: float | None = None,
) -> dict[str, Any]:
    """Handle the pending retraining requests (:func:`clientml_mle.retrain.handle_requests`) with the trainer
    the settings configure (:func:`~clientml_ds.trainer.configured_trainer`: ds by default, MLflow tracking and
    the champion gate on), and log whether it trained, and whether the gate promoted the model and why.

    Empty arguments fall back to the Airflow connection or the ``CLIENTML_*`` settings; ``search_*`` bound
    the ds trainer's search (``None``: its defaults). Returns the :class:`~clientml_mle.retrain.RetrainOutcome`
    as a dict. Raises what the training raises (the requests are then marked handled with the error).
    """
    settings = get_settings()
    directory = Path(models_dir) if models_dir else settings.models_dir
    train = configured_trainer(
        settings, models_dir=directory, search_trials=search_trials, search_seconds=search_seconds
    )
    outcome = handle_requests(resolve_warehouse_url(warehouse_url), directory, lambda frame: train(frame).summary())
    log.info("train_model: %s", outcome.outcome)
    return outcome.to_dict()
