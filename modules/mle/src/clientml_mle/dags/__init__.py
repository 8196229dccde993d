"""Airflow DAG files of the monitoring loop: thin wrappers around :mod:`clientml_mle.loop` (a DAG bundle, or a
subfolder of the dags folder: see the module README)."""
