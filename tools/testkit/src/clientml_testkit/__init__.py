"""Support code for the clientml tests and benchmarks (a dev-only workspace member, never a runtime dependency).

- :mod:`clientml_testkit.localpg`: a throwaway PostgreSQL server from the machine's binaries;
- :mod:`clientml_testkit.servers`: a free loopback port, and a server process started, awaited and stopped;
- :mod:`clientml_testkit.bench`: what the benchmarks measure (wall and CPU time, peak RSS of a process
  tree) and how they describe the machine;
- :mod:`clientml_testkit.data`: generated sources and DuckDB feature stores, made once per session;
- :mod:`clientml_testkit.fixtures`: the suite's shared pytest fixtures, markers and CI rule (a plugin the
  root ``conftest.py`` registers).
"""
