"""The pages of the running system, each photographed once it shows its content (see docs/screenshots/README.md)."""

from __future__ import annotations

import json
from urllib.parse import quote

from mlflow.tracking import MlflowClient

from screenshots.browser import Camera
from screenshots.system import AIRFLOW_ADMIN, System

MODEL_NAME = "clientml-classifier"
CHAMPION_ALIAS = "champion"
PROCESS_DATA = "process_data"


def airflow_login(camera: Camera, system: System) -> None:
    """Sign in to Airflow's UI as the admin (SimpleAuthManager's login form)."""
    page = camera.page
    camera.current = "the Airflow login"
    page.goto(f"{system.airflow}/", wait_until="domcontentloaded")
    page.locator("input[name='username']").fill(AIRFLOW_ADMIN)
    page.locator("input[name='password']").fill(system.airflow_password)
    page.locator("button[type='submit']").click()
    page.get_by_text("Dags", exact=False).first.wait_for(state="visible")


def airflow_pages(camera: Camera, system: System) -> None:
    status = camera.open("airflow-dags.png", f"{system.airflow}/dags", wait_for_text=PROCESS_DATA)
    camera.shoot("airflow-dags.png", status)
    run = quote(system.process_data_run, safe="")
    status = camera.open(
        "airflow-process-data.png", f"{system.airflow}/dags/{PROCESS_DATA}/runs/{run}", wait_for_text="Success"
    )
    graph = camera.page.get_by_role("button", name="Graph")
    if graph.count():
        graph.first.click()
    camera.wait(wait_for=".react-flow__node")
    camera.shoot("airflow-process-data.png", status)
    status = camera.open("airflow-assets.png", f"{system.airflow}/assets", wait_for_text="feature_store")
    camera.shoot("airflow-assets.png", status)


def _close_mlflow_assistant(camera: Camera) -> None:
    """MLflow 3's UI opens an assistant panel beside every page: close it, it is not ours."""
    close = camera.page.locator("button[data-component-id='mlflow.assistant.chat_panel.close']")
    if not close.count():
        close = camera.page.locator("[data-component-id^='mlflow.assistant.chat_panel'] button[aria-label='Close']")
    if close.count() and close.first.is_visible():
        close.first.click()
        camera.page.wait_for_timeout(500)


def mlflow_pages(camera: Camera, system: System) -> None:
    client = MlflowClient(tracking_uri=system.mlflow)
    version = client.get_model_version_by_alias(MODEL_NAME, CHAMPION_ALIAS)
    if version.run_id is None:
        raise RuntimeError(f"{MODEL_NAME}@{CHAMPION_ALIAS} has no run")
    run = client.get_run(version.run_id)
    status = camera.open(
        "mlflow-run.png",
        f"{system.mlflow}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}",
        wait_for_text="Metrics",
    )
    _close_mlflow_assistant(camera)
    metrics = camera.page.get_by_text(f"Metrics ({len(run.data.metrics)})").first
    metrics.evaluate("element => element.scrollIntoView({block: 'start'})")  # the table under its heading
    camera.wait(wait_for_text=sorted(run.data.metrics)[0])
    camera.shoot("mlflow-run.png", status)
    status = camera.open("mlflow-model.png", f"{system.mlflow}/#/models/{MODEL_NAME}", wait_for_text=CHAMPION_ALIAS)
    _close_mlflow_assistant(camera)
    camera.shoot("mlflow-model.png", status)


def api_pages(camera: Camera, system: System) -> None:
    status = camera.open("api-docs.png", f"{system.api}/docs", wait_for=".opblock")
    camera.shoot("api-docs.png", status)
    page = camera.page
    operation = page.locator(".opblock-post").filter(has_text="/v1/predict/clients").first
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.locator("textarea.body-param__text").fill(json.dumps({"client_ids": [system.client_id]}, indent=2))
    operation.get_by_role("button", name="Execute").click()
    operation.locator(".live-responses-table tbody .response-col_status").first.wait_for(state="visible")
    answer_status = int(operation.locator(".live-responses-table tbody .response-col_status").first.inner_text())
    camera.wait(wait_for_text="probability")
    # The answer, not the documentation of every status code below it.
    operation.locator("table.responses-table:not(.live-responses-table)").evaluate_all(
        "tables => tables.forEach(table => { table.style.display = 'none';"
        " const title = table.previousElementSibling;"
        " if (title && title.tagName === 'H4') title.style.display = 'none'; })"
    )
    camera.shoot("api-prediction.png", answer_status, element=operation)


def report_pages(camera: Camera, system: System) -> None:
    champion = (system.models_dir / "CHAMPION").read_text(encoding="utf-8").strip()
    [report] = sorted((system.models_dir / champion).rglob("report.html"))
    camera.open("report-roc.png", report.resolve().as_uri(), wait_for="img[src='roc.png']")
    camera.shoot("report-roc.png", None, element=camera.page.locator("img[src='roc.png']"))
    camera.shoot("report-calibration.png", None, element=camera.page.locator("img[src='calibration.png']"))
    camera.open("drift-report.png", system.drift_report.resolve().as_uri(), wait_for_text="Drift report")
    camera.shoot("drift-report.png", None)


def deployed_model(camera: Camera, url: str, api_key: str) -> None:
    """The deployed service's ``GET /v1/model`` answer (the browser renders the JSON as text)."""
    camera.page.set_extra_http_headers({"X-API-Key": api_key})
    status = camera.open("deployed-model.png", f"{url}/v1/model", wait_for_text='"version"')
    camera.shoot("deployed-model.png", status)
