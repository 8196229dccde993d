"""The screenshots' page check (clientml_testkit.screens), on pictures drawn here: no browser."""

from __future__ import annotations

import io

import pytest
from clientml_testkit.screens import PageError, check_page, page_problem
from PIL import Image, ImageDraw


def _png(draw_text: bool, spinner: bool = False) -> bytes:
    image = Image.new("RGB", (800, 600), "white")
    pen = ImageDraw.Draw(image)
    if draw_text:
        for row in range(40):
            pen.rectangle((20, 20 + row * 14, 20 + (row * 37) % 700, 28 + row * 14), fill=(30, 30, 30))
    if spinner:
        pen.ellipse((390, 290, 410, 310), outline=(0, 120, 255), width=3)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_a_page_with_content_passes() -> None:
    assert page_problem(200, "process_data success", _png(draw_text=True)) is None


def test_a_white_page_with_a_spinner_is_blank() -> None:
    problem = page_problem(200, "", _png(draw_text=False, spinner=True))
    assert problem is not None and problem.startswith("blank")


def test_a_uniform_image_is_blank() -> None:
    problem = page_problem(None, "", _png(draw_text=False))
    assert problem is not None and problem.startswith("blank")


@pytest.mark.parametrize("status", [401, 404, 500, 502])
def test_an_http_error_status_fails(status: int) -> None:
    assert page_problem(status, "", _png(draw_text=True)) == f"HTTP status {status}"


@pytest.mark.parametrize("text", ["Internal Server Error", '{"detail":"Not Found"}', "Something went wrong"])
def test_error_text_fails_even_on_a_full_page(text: str) -> None:
    problem = page_problem(200, f"Airflow\n{text}\nDAGs", _png(draw_text=True))
    assert problem is not None and problem.startswith("error text")


def test_check_page_names_the_page() -> None:
    with pytest.raises(PageError, match=r"^api-docs\.png: HTTP status 500"):
        check_page("api-docs.png", 500, "", _png(draw_text=True))
