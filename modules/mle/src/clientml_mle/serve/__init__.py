"""The prediction API: a FastAPI app serving a verified bundle through a compiled fast path.

- :func:`clientml_mle.serve.app.create_app` / ``create_app_from_config``: the app;
- :func:`clientml_mle.serve.server.run_server`: uvicorn with N worker processes, configured by one
  :class:`clientml_mle.serve.config.ServeConfig`;
- :mod:`clientml_mle.serve.fastpath`: records -> probabilities without pandas/sklearn, compiled from the
  bundle (``compile_bundle``) and verified against it (``verify``: a ``VerifiedPredictor``) before the
  API turns ready; :mod:`clientml_mle.serve.fastpath.forest`: the LightGBM trees compiled with numba.
"""

from __future__ import annotations

from clientml_mle.serve.app import create_app, create_app_from_config
from clientml_mle.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app", "create_app_from_config"]
