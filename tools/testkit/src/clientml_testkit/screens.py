"""Whether a screenshot shows a working page: no HTTP error status, no error text, not blank.

``make screenshots`` (tools/screenshots) calls :func:`check_page` on every picture it takes and stops, naming
the page, at the first that fails; the checks are pure functions so the suite tests them without a browser.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# Texts that only an error page or an error toast shows, in the UIs we photograph (Airflow's React UI, MLflow's,
# FastAPI's Swagger and JSON answers, Chromium's own error pages).
ERROR_TEXTS = (
    "Internal Server Error",
    "Traceback (most recent call last)",
    "404 Not Found",
    '"detail":"Not Found"',
    "Something went wrong",
    "Bad Gateway",
    "Service Unavailable",
    "Unauthorized",
    "Forbidden",
    "Failed to fetch",
    "ERR_CONNECTION_REFUSED",
    "ERR_EMPTY_RESPONSE",
    "HTTP ERROR",
)
# A page is blank when nearly every pixel has the most common colour: a white page with a spinner has well
# under 1% of others, the smallest real page here (a JSON answer of a few lines) several percent.
MIN_OTHER_PIXELS = 0.01
# ... or when the image hardly varies at all (a uniform background with faint noise, e.g. a gradient).
MIN_STDDEV = 4.0


class PageError(Exception):
    """A page shows an error or nothing: the message names the page."""


def other_pixels(png: bytes) -> float:
    """The share of pixels whose colour differs from the most common one."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    packed = (pixels[:, 0].astype(np.uint32) << 16) | (pixels[:, 1].astype(np.uint32) << 8) | pixels[:, 2]
    _, counts = np.unique(packed, return_counts=True)
    return 1.0 - float(counts.max()) / float(packed.size)


def grey_stddev(png: bytes) -> float:
    return float(np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64).std())


def page_problem(status: int | None, text: str, png: bytes) -> str | None:
    """What is wrong with a page (its HTTP status, None when not known; its visible text; its screenshot), or
    None when nothing is."""
    if status is not None and status >= 400:
        return f"HTTP status {status}"
    errors = [error for error in ERROR_TEXTS if error.lower() in text.lower()]
    if errors:
        return f"error text on the page: {', '.join(errors)}"
    share = other_pixels(png)
    if share < MIN_OTHER_PIXELS:
        return f"blank: only {share:.2%} of the pixels differ from the background"
    spread = grey_stddev(png)
    if spread < MIN_STDDEV:
        return f"blank: the image hardly varies (grey standard deviation {spread:.1f})"
    return None


def check_page(name: str, status: int | None, text: str, png: bytes) -> None:
    """Raise :class:`PageError` naming ``name`` when :func:`page_problem` finds something wrong."""
    problem = page_problem(status, text, png)
    if problem is not None:
        raise PageError(f"{name}: {problem}")
