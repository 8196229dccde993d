# The README's two commands are `make demo` and `make test`; everything else supports them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export UV_PYTHON ?= 3.11
export AIRFLOW__USAGE_DATA_COLLECTION__ENABLED := False
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export CHECKPOINT_DISABLE := 1
# Installed packages are compiled to bytecode once, as in the images (tools/docker/build-venv.sh): where
# PYTHONDONTWRITEBYTECODE is set, every process would otherwise compile its imports from source again
# (`clientml serve` took 39-59 s to start that way here, 8-18 s with bytecode, on a busy machine).
export UV_COMPILE_BYTECODE := 1

UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= .demo
# Smaller in tests/test_demo.py, which runs this very target cheaply.
DEMO_CLIENTS ?= 20000
DEMO_WAREHOUSE := duckdb:///$(abspath $(DEMO_DIR))/warehouse.duckdb
# The demo keeps everything it writes in DEMO_DIR (bundles, MLflow, Airflow's state, drift reports): it never
# mixes with the compose stack's modules/ds/models, and each run starts from nothing.
MODELS_DIR ?= $(DEMO_DIR)/models

.PHONY: help install lint typecheck test test-fast docs-check compose-test deploy-check deploy rollback destroy demo screenshots bench-etl bench-train bench-quality bench-serve clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(UV):
	python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv

$(BIN)/clientml: $(UV) uv.lock pyproject.toml modules/*/pyproject.toml modules/de/synthetic/pyproject.toml modules/ds/worlds/pyproject.toml tools/*/pyproject.toml
	$(UV) sync --frozen --all-packages
	@touch $@

install: $(BIN)/clientml  ## Create .venv with every module and the clientml CLI

lint: install  ## ruff (lint and format check)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install  ## mypy over every module
	$(BIN)/mypy src tests modules/de/src modules/de/synthetic/src modules/mle/src modules/ds/src modules/ds/worlds/src modules/deployment/src tools/testkit/src tools/docs_check tools/screenshots

test: install lint typecheck  ## The whole suite (lint, types, every test tier, then the compose test)
	$(BIN)/pytest -m "not compose"
	$(MAKE) compose-test

compose-test: install  ## The docker-compose stack from scratch: up, hands-off run, retrain, faults, down
	$(BIN)/pytest -m compose -s tests/compose $(PYTEST_ARGS)

deploy-check: install  ## Offline checks of modules/deployment: terraform fmt/validate/test (mocked AWS), checkov, actionlint
	UV=$(UV) bash modules/deployment/checks/run.sh all

# The inputs are environment variables (ENVIRONMENT, TF_STATE_BUCKET, TF_VAR_api_key, IMAGE_TAG, BUNDLE, ...):
# modules/deployment/README.md, "Deploy, roll back, destroy".
deploy: install  ## Build and push the API image, upload the bundle, terraform apply, smoke-test the URL (AWS)
	$(BIN)/python -m clientml_deploy deploy

rollback: install  ## Return the API to the previous image and bundle, then smoke-test it
	$(BIN)/python -m clientml_deploy rollback

destroy: install  ## Destroy the environment's stack
	$(BIN)/python -m clientml_deploy destroy

FAST_TIER := not (postgres or spark or airflow or slow or realdata or compose or docker)

test-fast: install  ## The tests that need no service and are quick (no lint, no types): the edit loop
	$(BIN)/pytest -m "$(FAST_TIER)" $(PYTEST_ARGS)

demo: export CLIENTML_STATE_DIR ?= $(abspath $(DEMO_DIR))/state
demo: install  ## The main job end to end: generate, ETL, the loop (train, score, drift), a shifted drop, serve
	rm -rf $(DEMO_DIR)
	$(BIN)/clientml generate --out $(DEMO_DIR)/data --clients $(DEMO_CLIENTS) --seed 7 --bad-rows 0.01
	@echo "== first drop: ETL, then the loop (no champion yet: monitor_drift asks, train_model trains, score_clients scores)"
	$(BIN)/clientml pipeline --clients $(DEMO_DIR)/data/clients.csv --sales $(DEMO_DIR)/data/sales.csv \
		--warehouse $(DEMO_WAREHOUSE) --models-dir $(MODELS_DIR) > $(DEMO_DIR)/pipeline-1.json
	$(BIN)/python -m clientml.demo loop $(DEMO_DIR)/pipeline-1.json
	$(BIN)/clientml generate --out $(DEMO_DIR)/shifted --clients $(DEMO_CLIENTS) --seed 7 --bad-rows 0.01 --shift activity
	@echo "== second drop, the clients buying half as often: drift, retraining, the champion gate decides"
	$(BIN)/clientml pipeline --clients $(DEMO_DIR)/shifted/clients.csv --sales $(DEMO_DIR)/shifted/sales.csv \
		--warehouse $(DEMO_WAREHOUSE) --models-dir $(MODELS_DIR) > $(DEMO_DIR)/pipeline-2.json
	$(BIN)/python -m clientml.demo loop $(DEMO_DIR)/pipeline-2.json
	$(BIN)/clientml score --warehouse $(DEMO_WAREHOUSE) --models-dir $(MODELS_DIR) --out $(DEMO_DIR)/scores.csv
	$(BIN)/python -m clientml.demo serve --models-dir $(MODELS_DIR) --warehouse $(DEMO_WAREHOUSE)

# Not part of `make test` (minutes: the system up, then a browser). SCREENSHOTS_ARGS: e.g. --system embedded,
# --no-deployed (no Docker), --standins (the stand-in base images, no Docker Hub); `python -m screenshots -h`.
screenshots: install  ## Bring the system up, photograph its pages into docs/screenshots/ (slow; not in make test)
	rm -rf .screenshots
	PYTHONPATH=tools $(BIN)/python -m screenshots $(SCREENSHOTS_ARGS)

bench-etl: install  ## ETL benchmark: 100k and 1M clients on DuckDB and PostgreSQL vs a pandas reference
	$(BIN)/python modules/de/bench/bench_etl.py $(BENCH_ARGS)

bench-train: install  ## Training benchmark: clientml train on 1M generated clients (target < 10 min)
	$(BIN)/python modules/ds/bench/bench_train.py $(BENCH_ARGS)

bench-quality: install  ## Model quality: gap to the best achievable on 4 worlds, Telco and Berka CV (.bench/quality.md)
	$(BIN)/python modules/ds/bench/bench_quality.py $(BENCH_ARGS)

bench-serve: install  ## Serving benchmark: start-up, memory, our API vs a bare endpoint and mlflow (.bench/serve.md)
	$(BIN)/python modules/mle/bench/bench_serve.py $(BENCH_ARGS)

docs-check: install  ## Run README.md's cheap commands in a throwaway copy; check each heavy one's named test
	$(BIN)/python tools/docs_check/docs_check.py

clean:  ## Remove generated state (keeps .venv)
	rm -rf $(DEMO_DIR) .clientml .screenshots .pytest_cache .mypy_cache .ruff_cache
