#!/bin/sh
# Run once by the postgres image on an empty data directory (/docker-entrypoint-initdb.d): one role and one
# database each for the warehouse, Airflow's metadata and MLflow, so that no service can read another's data.
set -eu
: "${WAREHOUSE_DB_PASSWORD:?WAREHOUSE_DB_PASSWORD is required}"
: "${AIRFLOW_DB_PASSWORD:?AIRFLOW_DB_PASSWORD is required}"
: "${MLFLOW_DB_PASSWORD:?MLFLOW_DB_PASSWORD is required}"
for pair in "warehouse:$WAREHOUSE_DB_PASSWORD" "airflow:$AIRFLOW_DB_PASSWORD" "mlflow:$MLFLOW_DB_PASSWORD"; do
    name="${pair%%:*}"
    password="${pair#*:}"
    psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -v name="$name" -v password="$password" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
done
