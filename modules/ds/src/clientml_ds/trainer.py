"""The training function as the settings configure it: what ``clientml train`` and the ``train_model`` DAG run.

:func:`configured_trainer` binds every option of the chosen trainer (``ds``: this module's model selection;
``default``: mle's one-hot + LightGBM baseline) and the MLflow tracker of the champion gate, and returns a
function from a training frame to its result (``.summary()``). The choice lives here, in the one module that
depends on both trainers (mle never imports ds).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from clientml_de.settings import Settings
from clientml_mle.tracking import MlflowTracker

TRAINERS = ("ds", "default")


def configured_trainer(
    settings: Settings,
    *,
    trainer: str | None = None,
    models_dir: Path | None = None,
    seed: int | None = None,
    tracking_uri: str | None = None,
    model_name: str | None = None,
    tracking: bool = True,
    force_promote: bool = False,
    search_seconds: float | None = None,
    search_trials: int | None = None,
    ground_truth: Path | None = None,
) -> Callable[[pd.DataFrame], Any]:
    """The chosen trainer with every option bound: a training frame in, its result (``.summary()``) out.

    ``None`` options come from ``settings`` (``CLIENTML_TRAINER``, ``CLIENTML_MODELS_DIR``, ``CLIENTML_SEED``,
    the MLflow settings ...); ``search_*`` and ``ground_truth`` apply to the ``ds`` trainer only.

    Raises:
        ValueError: ``trainer`` is not one of :data:`TRAINERS`.
    """
    choice = trainer or settings.trainer
    if choice not in TRAINERS:
        raise ValueError(f"--trainer must be 'ds' or 'default', not {choice!r}")
    tracker = None
    if tracking:
        tracker = MlflowTracker.from_settings(settings)
        tracker.tracking_uri = tracking_uri or tracker.tracking_uri
        tracker.model_name = model_name or tracker.model_name
    n_jobs = settings.train_n_jobs
    run: Callable[..., Any]
    if choice == "ds":
        from clientml_ds.train import cli_train

        run = partial(
            cli_train,
            n_jobs=n_jobs,
            search_seconds=search_seconds,
            search_trials=search_trials,
            ground_truth=ground_truth,
        )
    else:
        from clientml_mle.estimators import default_estimator
        from clientml_mle.train import train

        run = partial(train, lambda specs: default_estimator(specs, n_jobs=n_jobs))
    return partial(
        run,
        seed=settings.seed if seed is None else seed,
        test_size=settings.test_size,
        models_dir=models_dir or settings.models_dir,
        tracking=tracker,
        name=model_name or settings.model_name,
        force_promote=force_promote,
    )
