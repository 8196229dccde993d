"""Airflow DAG file of the training job: a thin wrapper around :mod:`clientml_ds.tasks` (a DAG bundle of the
embedded pipeline; not mounted in compose, where the trainer service trains: see the module README)."""
