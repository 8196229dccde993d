"""Airflow DAG files: thin wrappers around :mod:`clientml_de.tasks` (point dags_folder here)."""
