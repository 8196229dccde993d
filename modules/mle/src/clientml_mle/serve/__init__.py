"""The prediction API: a FastAPI app serving a verified bundle through a compiled fast path.

- :func:`clientml_mle.serve.app.create_app` / ``create_app_from_env``: the app;
- :func:`clientml_mle.serve.server.run_server`: uvicorn with N worker processes;
- :class:`clientml_mle.serve.predictor.FastPredictor`: records -> probabilities without pandas/sklearn,
  verified against the bundle before the API turns ready;
- :mod:`clientml_mle.serve.forest`: the LightGBM trees compiled with numba.
"""

from __future__ import annotations

from clientml_mle.serve.app import create_app, create_app_from_env

__all__ = ["create_app", "create_app_from_env"]
