"""Headless Debian Chromium driven by Playwright, and one checked screenshot per page.

Playwright only drives the browser here: it never downloads one of its own (that does not work on these
machines); Debian's ``/usr/bin/chromium`` runs with a fresh profile in a temporary directory.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import swagger_ui
from clientml_testkit.screens import PageError, check_page
from playwright.sync_api import BrowserContext, Locator, Page, Response, Route, sync_playwright
from playwright.sync_api import Error as PlaywrightError

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1440, "height": 900}
# FastAPI's Swagger page loads Swagger UI from a CDN, which these machines cannot reach (and a screenshot run
# should not call out anyway): the browser gets the same files from the swagger-ui-py package instead.
SWAGGER_CDN = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@*/*"
SWAGGER_FILES = Path(swagger_ui.__file__).parent / "static"
# The React UIs fetch their content after the page has loaded: wait for the content itself, this long.
CONTENT_TIMEOUT_MS = 90_000


@contextlib.contextmanager
def chromium() -> Iterator[BrowserContext]:
    """A headless Chromium with a fresh profile, closed (and the profile removed) afterwards."""
    with tempfile.TemporaryDirectory(prefix="clientml-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": VIEWPORT["width"], "height": VIEWPORT["height"]},
        )
        context.set_default_timeout(CONTENT_TIMEOUT_MS)
        # Nothing leaves the machine (e.g. FastAPI's favicon, MLflow's news feed): every service photographed
        # answers plain HTTP. The Swagger route, added last, is tried first (Playwright's order).
        context.route("https://**", lambda route: route.abort())
        context.route(SWAGGER_CDN, _swagger_file)
        try:
            yield context
        finally:
            context.close()


def _swagger_file(route: Route) -> None:
    route.fulfill(path=SWAGGER_FILES / route.request.url.rsplit("/", 1)[-1])


@dataclass
class Camera:
    """Writes each page's screenshot to ``out`` after :func:`check_page` passed on it."""

    page: Page
    out: Path
    # The picture being taken, for the failure message when the page misbehaves between open() and shoot().
    current: str = "the first page"

    def open(self, name: str, url: str, *, wait_for_text: str | None = None, wait_for: str | None = None) -> int | None:
        """Go to ``url`` for the picture ``name`` and wait until ``wait_for_text`` (text) or ``wait_for`` (a
        selector) shows; its status. A page that does not load or never shows it fails naming the picture."""
        self.current = name
        try:
            response: Response | None = self.page.goto(url, wait_until="domcontentloaded")
            self.wait(wait_for_text=wait_for_text, wait_for=wait_for)
        except PlaywrightError as exc:
            raise PageError(f"{name}: {url}: {exc.message.splitlines()[0]}") from exc
        return response.status if response is not None else None

    def wait(self, *, wait_for_text: str | None = None, wait_for: str | None = None) -> None:
        if wait_for_text is not None:
            self.page.get_by_text(wait_for_text, exact=False).first.wait_for(state="visible")
        if wait_for is not None:
            self.page.locator(wait_for).first.wait_for(state="visible")
        # Let images, charts and transitions settle after the content appeared.
        with contextlib.suppress(Exception):
            self.page.wait_for_load_state("networkidle", timeout=10_000)
        self.page.wait_for_timeout(1_500)

    def shoot(self, name: str, status: int | None, *, element: Locator | None = None, full_page: bool = False) -> Path:
        """Screenshot the page (or one ``element`` of it) into ``out/name``, failing if it shows an error or
        nothing."""
        png = element.screenshot() if element is not None else self.page.screenshot(full_page=full_page)
        text = element.inner_text() if element is not None else self.page.inner_text("body")
        check_page(name, status, text, png)
        path = self.out / name
        path.write_bytes(png)
        print(f"screenshot: {path}", flush=True)
        return path
