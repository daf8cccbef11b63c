"""The web app in a real browser: headless Chromium (Debian's) driven by Playwright against ``main.py --serve``.

Skipped, with one line naming what is missing, where Chromium or Playwright is not installed; ``.ci/run``
installs Chromium as docs/serve.md tells a user to.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import browser
from tests.test_serve import SEVEN

why = browser.missing()
if why:
    pytest.skip(why, allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from data_utils import default_data_dir  # noqa: E402

PENDIGITS = default_data_dir() / "PENDIGITS" / "pendigits.csv"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """The committed reference models (an empty --out-dir: none of your runs) in Chromium."""
    with browser.serve("--out-dir", str(tmp_path_factory.mktemp("none"))) as server, sync_playwright() as p:
        chromium = browser.launch(p)
        yield server, chromium
        chromium.close()


@pytest.fixture
def page(site):
    server, chromium = site
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "status of 400" not in m.text else None)
    page.goto(server.url)
    yield page
    context.close()
    assert not errors, errors


def shown(page) -> dict[str, str]:  # noqa: ANN001
    """Each model's answer as the page shows it."""
    return {card.get_attribute("data-model"): card.locator(".digit").inner_text()
            for card in page.locator("#answers .card").all()}


@pytest.mark.skipif(not PENDIGITS.exists(), reason=f"{PENDIGITS} is missing (a development set: ../shared/data)")
def test_pen_trajectories_drawn_on_the_canvas_are_read_by_every_model(page) -> None:  # noqa: ANN001
    samples = browser.pendigits(PENDIGITS.parents[1], 20, start=7)
    right = {}
    for n, (points, digit) in enumerate(samples, 1):
        browser.draw(page, points)
        payload = browser.answered(page, n)
        said = {a["key"]: a["verdict"] if a["number"] is None else a["number"] for a in payload["answers"]}
        assert shown(page) == said  # on screen as the server said ("not a digit" where a model rejects the drawing)
        for key, number in shown(page).items():
            right[key] = right.get(key, 0) + (number == str(digit))
        assert "8 models answered in" in page.locator("#status").inner_text()
        browser.clear(page)
    assert len(right) == 8
    # a broken canvas path reads about one in ten; the whole zoo reads 76-81% of 300 (docs/serve.md)
    assert min(right.values()) >= 0.5 * len(samples), right


def test_undo_takes_back_a_stroke_and_clear_empties_the_page(page) -> None:  # noqa: ANN001
    browser.draw(page, [(140, 40), (140, 240)])  # a 1
    browser.answered(page, 1)
    assert shown(page)["3"] == "1"
    browser.draw(page, [(50, 42), (140, 42)])  # a bar ending at the top of the stroke: a 7 (across it: a T)
    browser.answered(page, 2)
    assert shown(page)["3"] == "7"
    page.click("#undo")
    browser.answered(page, 3)
    assert shown(page)["3"] == "1"
    page.click("#clear")
    assert page.locator("#answers .card").count() == 0 and page.locator("#saw-box").is_hidden()


def test_a_pen_and_a_finger_draw_too(page) -> None:  # noqa: ANN001
    cdp = page.context.new_cdp_session(page)
    box = page.locator("#pad").bounding_box()
    xy = [(box["x"] + 140, box["y"] + y) for y in range(40, 241, 20)]
    for kind, (x, y) in (("mousePressed", xy[0]), *(("mouseMoved", p) for p in xy[1:]), ("mouseReleased", xy[-1])):
        cdp.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "pointerType": "pen",
                                              "buttons": 0 if kind == "mouseReleased" else 1, "clickCount": 1})
    assert browser.answered(page, 1)["answers"][0]["number"] == "1"
    page.click("#clear")
    touches = [(box["x"] + 60 + 8 * i, box["y"] + 60) for i in range(21)] + \
              [(box["x"] + 220 - 5 * i, box["y"] + 60 + 9 * i) for i in range(1, 21)]  # a 7
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": touches[0][0], "y": touches[0][1]}]})
    for x, y in touches[1:]:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    browser.answered(page, 2)
    assert shown(page)["3"] == "7"


def test_an_upload_is_answered_and_a_non_image_gets_a_message_in_the_page(page, tmp_path: Path) -> None:  # noqa: ANN001
    (tmp_path / "seven.png").write_bytes(SEVEN)
    (tmp_path / "notes.txt").write_text("not an image at all")
    page.set_input_files("#file", str(tmp_path / "seven.png"))
    browser.answered(page, 1)
    assert list(shown(page).values()).count("7") >= 7
    assert "(upload: seven.png)" in page.locator("#status").inner_text()
    page.set_input_files("#file", str(tmp_path / "notes.txt"))
    browser.answered(page, 2)
    assert page.locator("#error").inner_text() == "notes.txt: not a readable image (UnidentifiedImageError)"
    assert page.locator("#answers .card").count() == 0
    browser.draw(page, [(140, 40), (140, 240)])  # the page and the server go on
    browser.answered(page, 3)
    assert shown(page)["3"] == "1" and page.locator("#error").is_hidden()


def test_saliency_maps_are_drawn_when_asked_for(page) -> None:  # noqa: ANN001
    page.check("#saliency")
    browser.draw(page, [(140, 40), (140, 240)])
    browser.answered(page, 1)
    maps = page.locator("#answers img.saliency")
    assert maps.count() == 8 and all(m.evaluate("img => img.complete && img.naturalWidth === 28") for m in maps.all())


def test_the_dashboard_shows_every_model_sorts_and_opens_each_ones_figures(site) -> None:  # noqa: ANN001
    server, chromium = site
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    page.goto(server.url + "dashboard")
    page.wait_for_selector("body[data-loaded]", state="attached")
    rows = page.locator("#board tbody tr")
    assert rows.count() == 8
    page.click('th[data-column="final_test_acc"]')
    page.click('th[data-column="final_test_acc"]')  # twice: descending
    accuracies = [float(t) for t in page.locator("#board tbody tr td:nth-child(6)").all_inner_texts()]
    assert accuracies == sorted(accuracies, reverse=True) and rows.first.get_attribute("data-model") == "cnn-bn"
    assert page.locator("#frontier img").evaluate("img => img.decode().then(() => img.naturalWidth)") > 0
    figures = {m["key"]: len(m["figures"]) for m in page.evaluate("fetch('/api/models').then(r => r.json())")["models"]}
    assert figures == {key: 3 if key.startswith("fc") else 4 for key in figures}  # an MLP has no filters to show
    for block in page.locator("details.model").all():
        block.locator("summary").click()
        images = block.locator("img")
        assert images.count() == figures[block.get_attribute("data-model")]
        for image in images.all():
            image.scroll_into_view_if_needed()
            assert image.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0
        expect(block.locator("pre")).to_contain_text("Total params")  # fetched when opened
    page.close()
