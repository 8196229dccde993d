"""The suite's shared fixtures, markers and CI rule live in the dev-only package ``clientml-testkit``.

See ``tools/testkit/src/clientml_testkit/fixtures.py``: a throwaway PostgreSQL server for the session, a Spark
standalone cluster for a test, the real datasets at ``../shared/data/real`` (or ``CLIENTML_REAL_DATA``),
generated data made once per session, and the rule that a skipped test fails the run in CI.
"""

pytest_plugins = ["clientml_testkit.fixtures"]
