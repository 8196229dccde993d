"""The prediction API: a FastAPI app serving a verified bundle through a compiled fast path.

- :func:`clientml_mle.serve.app.create_app`: the app (``clientml_mle.serve.config.create_app_from_config``
  for a server worker);
- :func:`clientml_mle.serve.server.run_server`: uvicorn with N worker processes, configured by one
  :class:`clientml_mle.serve.config.ServeConfig`;
- :mod:`clientml_mle.serve.fastpath`: records -> probabilities without pandas/sklearn, compiled from the
  bundle (``compile_bundle``) and verified against it (``verify``: a ``VerifiedPredictor``) before the
  API turns ready, or stored in the bundle at training and verified again at load
  (:mod:`clientml_mle.serve.fastpath.stored`); :mod:`clientml_mle.serve.fastpath.forest`: the LightGBM
  trees compiled with numba;
- :func:`clientml_mle.serve.fetch.fetch_bundle`: the bundle to serve downloaded from S3 first (the deployed
  container, ``CLIENTML_BUNDLE_S3_URI``).

Nothing is imported here: the server's supervisor imports :mod:`clientml_mle.serve.config` alone.
"""
