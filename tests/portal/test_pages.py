"""The portal's web pages in a real headless Chromium (Debian's, driven by Playwright for Python) against a real
`edgevision portal` process: every click goes through the Training API routes the SDK uses."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image

from edgevision.portal.pages import new_session, valid_session
from tests.conftest import wait_until
from tests.portal.conftest import PREDICTION_KEY, TRAINING_KEY, Portal, aerial_images, training
from tests.portal.test_ranger_loop import camera_loop

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Screenshots for docs/portal.md, taken by this test's own code when asked: PORTAL_SCREENSHOTS=docs/images
SCREENSHOTS = os.environ.get("PORTAL_SCREENSHOTS")
HOSTILE = '<img src=x onerror="window.pwned=1">'


def training_url(portal: Portal, path: str) -> str:
    return f"{portal.url}/customvision/v3.3/training{path}"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh test installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra) is not installed")
    profile = tempfile.mkdtemp(prefix="edgevision-chromium-")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(20_000)
        yield context
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser):
    browser.clear_cookies()
    tab = browser.new_page()
    tab.on("dialog", lambda dialog: dialog.accept())
    yield tab
    tab.close()


def shot(page, name: str, element: str | None = None) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        path = Path(SCREENSHOTS) / f"portal-{name}.png"
        (page.locator(element) if element else page).screenshot(path=str(path))
        with Image.open(path) as image:  # a palette PNG: a tenth of the size, for the docs
            small = image.convert("RGB").quantize(colors=64)
        small.save(path, optimize=True)


def log_in(page, portal: Portal) -> None:
    page.goto(portal.url)
    page.fill("#login-key", "not-the-key")
    page.click("#login button[type=submit]")
    page.wait_for_selector("#login-error:has-text('not this portal')")
    shot(page, "login")
    page.fill("#login-key", TRAINING_KEY)
    page.click("#login button[type=submit]")
    page.wait_for_selector("#create-project")


def upload(page, files: list[Path], tag: str | None) -> None:
    page.select_option("#upload-tag", label=tag or "(no tag)")
    page.set_input_files("#upload-files", [str(f) for f in files])


def drop(page, files: list[Path]) -> None:
    """Drag and drop: the files dropped on the drop zone as a browser's DataTransfer."""
    payload = [{"name": f.name, "data": base64.b64encode(f.read_bytes()).decode()} for f in files]
    transfer = page.evaluate_handle(
        """(files) => {
            const transfer = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
                const type = f.name.endsWith(".png") ? "image/png" : "image/jpeg";
                transfer.items.add(new File([bytes], f.name, { type }));
            }
            return transfer;
        }""",
        payload,
    )
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})


@pytest.mark.slow
def test_the_ranger_creates_uploads_tags_trains_tunes_publishes_and_moves_a_prediction(
    page, portal: Portal, tmp_path: Path
) -> None:
    images = aerial_images(per_tag=7)
    log_in(page, portal)
    page.fill("#project-name", "aerial")
    page.fill("#project-description", "land use from the air")
    page.select_option("#project-domain", label="General (compact)")  # exportable, for the Int8 export below
    shot(page, "projects")
    page.click("#create-project")
    page.wait_for_selector("#upload-files")
    for name in ["Barren", "Cultivated", "Developed"]:
        page.fill("#tag-name", name)
        page.click("#add-tag")
        page.wait_for_selector(f".filters a:has-text('{name}')")

    # upload by the file picker: one class with a file that is not an image among it (a per-file error)
    bad = tmp_path / "notes.txt"
    bad.write_text("not a picture")
    upload(page, [*images["Barren"][:6], bad], "Barren")
    page.wait_for_selector("#upload-status:has-text('6 of 7 uploaded')")
    assert page.inner_text("#upload-errors") == "notes.txt: ErrorImageFormat"
    upload(page, images["Cultivated"][:6], "Cultivated")
    page.wait_for_selector("#upload-status:has-text('6 of 6 uploaded')")
    page.select_option("#upload-tag", label="(no tag)")
    drop(page, images["Developed"][:6])
    page.wait_for_selector("#upload-status:has-text('6 of 6 uploaded')")

    # tag the untagged ones by selecting them all
    page.click("a[data-filter=untagged]")
    page.wait_for_selector("#page:has-text('6 images')")
    page.click("#select-page")
    page.wait_for_selector("#selected-count:has-text('6 selected')")
    page.select_option("#selection-tag", label="Developed")
    page.click("#tag-selected")
    page.wait_for_selector("#no-images")
    page.click("a[data-filter=all]")
    page.wait_for_selector("#page:has-text('18 images')")
    assert page.locator(".filters a:has-text('Developed · 6')").count() == 1
    shot(page, "images")

    # train, watch the status go to Completed
    page.click("#tab-train")
    page.click("#train-quick")
    page.wait_for_selector("#iterations .status:has-text('Training')")
    page.wait_for_selector("#iterations .status:has-text('Completed')", timeout=150_000)
    assert page.inner_text("#iterations .taken").endswith(" s")
    shot(page, "train")

    # performance: the numbers are the API's at the slider's threshold and change as it moves
    project_id = page.url.split("/p/")[1].split("/")[0]
    iteration_id = page.get_attribute("#iterations tr[data-id]", "data-id")
    page.click("#tab-performance")
    page.wait_for_selector("#pr-curve polyline", state="attached")
    assert page.locator("#confusion rect").count() == 3 * 4
    at_half = page.inner_text("#recall")

    def api_recall(threshold: float) -> str:
        answer = requests.get(
            training_url(portal, f"/projects/{project_id}/iterations/{iteration_id}/performance"),
            params={"threshold": threshold},
            headers={"Training-Key": TRAINING_KEY},
            timeout=30,
        ).json()
        return f"{100 * answer['recall']:.1f}%"

    assert at_half == api_recall(0.5)
    shot(page, "performance")
    page.focus("#threshold")
    page.keyboard.press("End")
    page.wait_for_selector("#threshold-value:has-text('100%')")
    page.wait_for_function("(old) => document.getElementById('recall').textContent !== old", arg=at_half)
    assert page.inner_text("#recall") == api_recall(1.0)
    assert float(page.inner_text("#recall").rstrip("%")) < float(at_half.rstrip("%"))
    assert page.locator("#wrong .wrong-image").count() > 0  # at 100% nearly every image goes unpredicted
    page.keyboard.press("Home")
    page.wait_for_selector("#threshold-value:has-text('0%')")

    # publish under the default name; the shown URL answers with the prediction key
    assert page.input_value("#publish-name") == "Iteration1"
    page.click("#publish-button")
    page.wait_for_selector("#prediction-url")
    url = page.inner_text("#prediction-url")
    assert url == f"{portal.url}/customvision/v3.1/prediction/{project_id}/classify/iterations/Iteration1/image"
    assert url in page.inner_text("#curl")
    photo = images["Cultivated"][6]
    predicted = requests.post(url, data=photo.read_bytes(), headers={"Prediction-Key": PREDICTION_KEY}, timeout=60)
    assert predicted.status_code == 200, predicted.text
    assert {p["tagName"] for p in predicted.json()["predictions"]} == {"Barren", "Cultivated", "Developed"}
    shot(page, "publish", "#publish")

    # quick test an image, saved to the predictions; then tag it and move it into training in one action
    page.click("#tab-quicktest")
    page.check("#quicktest-store")
    page.set_input_files("#quicktest-file", str(images["Developed"][6]))
    page.wait_for_selector("#quicktest-table tr:nth-child(4)")
    shot(page, "quicktest")
    page.fill("#quicktest-url", "http://127.0.0.1:1/deer.jpg")  # the portal's SSRF guard refuses loopback
    page.click("#quicktest-url-button")
    page.wait_for_selector("#notice .error:has-text('BadRequestImageUrl')")
    page.click("#tab-predictions")
    page.select_option("#prediction-order", "Suggested")
    page.wait_for_selector("#predictions[data-order=Suggested] .tile")
    assert page.locator("#predictions .tile").count() == 2  # the quick test and the published-URL request
    page.click("#predictions .tile >> nth=0")
    page.select_option("#prediction-tag", label="Developed")
    page.click("#move-predictions")
    page.wait_for_selector("#notice:has-text('1 of 1 moved into training')")
    page.wait_for_function("() => document.querySelectorAll('#predictions .tile').length === 1")
    count = requests.get(
        training_url(portal, f"/projects/{project_id}/images/count"), headers={"Training-Key": TRAINING_KEY}, timeout=30
    )
    assert count.json() == 19

    # the images trained in Iteration1: the 18 uploaded, not the prediction moved in after it
    page.click("#tab-images")
    page.wait_for_selector("#page:has-text('19 images')")
    page.select_option("#filter-iteration", label="in Iteration 1")
    page.wait_for_selector("#page:has-text('18 images')")

    # unpublish from the performance page, then export the iteration as int8 ONNX from the same page
    page.click("#tab-performance")
    page.click("#unpublish")
    page.wait_for_selector("#publish-button")
    page.select_option("#export-flavor", "Int8")
    page.click("#export-onnx")
    link = page.wait_for_selector("#exports a:has-text('ONNX Int8')", timeout=180_000)
    download = requests.get(link.get_attribute("href") or "", timeout=60)  # a signed link: no key needed
    assert download.status_code == 200, download.text
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        assert "Quantization" in archive.read("cvexport.manifest").decode()
        assert {"labels.txt", "model.onnx"} <= set(archive.namelist())


@pytest.mark.slow
def test_the_ranger_tags_kept_frames_retrains_and_the_camera_scorer_serves_the_new_iteration(
    page, tmp_path: Path
) -> None:
    # the first model, made through the SDK (the other test makes one through the pages)
    with camera_loop(tmp_path) as loop:
        portal, trainer, project, first, tiles = loop.portal, loop.trainer, loop.project, loop.first, loop.tiles
        endpoint, published, kept = loop.endpoint, loop.published, loop.kept
        assert len(kept) >= 2
        token = training.models.PredictionQueryToken(application="camera-capture")
        wait_until(lambda: len(trainer.query_predictions(project.id, token).results) == len(kept), timeout=60)

        # in the pages: the kept frames, least confident first; two of them tagged into training in one action
        log_in(page, portal)
        page.goto(f"{portal.url}/#/p/{project.id}/predictions")
        page.select_option("#prediction-source", "camera-capture")
        page.select_option("#prediction-order", "Suggested")
        shown = "#predictions[data-order=Suggested][data-source=camera-capture] .tile"
        page.wait_for_selector(f"{shown} >> nth={len(kept) - 1}")
        shot(page, "predictions")
        page.click("#predictions .tile >> nth=0")
        page.click("#predictions .tile >> nth=1")
        page.select_option("#prediction-tag", label="Developed")
        page.click("#move-predictions")
        page.wait_for_selector("#notice:has-text('2 of 2 moved into training')")
        assert trainer.get_tagged_image_count(project.id) in (13, 14)  # two frames of one photo are one picture

        # retrain, then publish the new iteration under the camera's name, replacing the first
        page.click("#tab-train")
        page.click("#train-quick")
        page.wait_for_selector("#iterations tr:nth-child(3) .status:has-text('Completed')", timeout=150_000)
        page.click("#tab-performance")
        page.wait_for_selector("#iteration option:has-text('Iteration 2')", state="attached")
        assert page.input_value("#iteration") != first.id  # the newest iteration is shown first
        page.wait_for_selector("#compare tr:has-text('Iteration 2')")
        assert page.locator("#compare tr:has-text('Iteration 1')").count() == 1  # both, side by side
        shot(page, "compare")
        page.fill("#publish-name", "camera")
        page.check("#publish-overwrite")
        page.click("#publish-button")
        page.wait_for_selector("#published-name:has-text('camera')")
        new_sha = json.loads((published / "camera" / "cvexport.manifest").read_text())["ModelFileSHA256"][:12]

        def serves_new() -> bool:
            answer = requests.post(endpoint, data=tiles["Developed"][9].read_bytes(), timeout=30)
            return answer.status_code == 200 and answer.headers.get("X-Model-Id", "").endswith(new_sha)

        wait_until(serves_new, timeout=60, what="the camera's scorer to serve iteration 2")


def test_a_session_cookie_is_httponly_strict_and_writes_need_the_csrf_token(page, portal: Portal) -> None:
    log_in(page, portal)
    cookie = next(c for c in page.context.cookies() if c["name"] == "edgevision_portal_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    script = """async ([url, token]) => {
        const headers = token ? {"X-CSRF-Token": token} : {};
        const r = await fetch(url, {method: "POST", headers, credentials: "same-origin"});
        return [r.status, (await r.json()).code];
    }"""
    create = training_url(portal, "/projects?name=csrf")
    assert page.evaluate(script, [create, None]) == [403, "Forbidden"]
    assert page.evaluate(script, [create, "forged"]) == [403, "Forbidden"]
    token = page.evaluate("async () => (await (await fetch('/portal/session')).json()).csrfToken")
    assert page.evaluate(script, [create, token])[0] == 200
    reads = page.evaluate(f"async () => (await fetch('{training_url(portal, '/projects')}')).status")
    assert reads == 200  # reads need the cookie only
    # outside the browser: no cookie and no key is refused; the key header alone still works (the SDK's way)
    assert requests.post(create.replace("csrf", "other"), timeout=30).status_code == 401
    keyed = requests.post(create.replace("csrf", "other"), headers={"Training-Key": TRAINING_KEY}, timeout=30)
    assert keyed.status_code == 200
    page.click("#logout")
    page.wait_for_selector("#login-key")
    assert page.evaluate(f"async () => (await fetch('{training_url(portal, '/projects')}')).status") == 401


def test_without_keys_on_loopback_there_is_no_login_and_html_in_names_stays_text(page, tmp_path: Path) -> None:
    open_portal = Portal(tmp_path / "data", env={"TRAINING_KEY": "", "PREDICTION_KEY": ""})
    try:
        made = requests.post(training_url(open_portal, "/projects"), params={"name": HOSTILE}, timeout=30).json()
        requests.post(training_url(open_portal, f"/projects/{made['id']}/tags"), params={"name": HOSTILE}, timeout=30)
        page.goto(open_portal.url)
        page.wait_for_selector("#projects")
        assert page.locator("#login-key").count() == 0
        assert page.inner_text("#projects .project-link") == HOSTILE
        page.click("#projects .project-link")
        page.wait_for_selector(".filters a[data-filter^='tag:']")
        assert page.inner_text(".filters a[data-filter^='tag:']") == f"{HOSTILE} · 0"
        assert page.evaluate("window.pwned") is None
        assert page.locator("main img[src=x]").count() == 0
        # the Negative tag, then a project made and deleted in the pages
        page.fill("#tag-name", "nothing here")
        page.check("#tag-negative")
        page.click("#add-tag")
        page.wait_for_selector(".filters a:has-text('nothing here (negative)')")
        page.click("text=Projects")
        page.fill("#project-name", "short-lived")
        page.select_option("#project-type", "Multilabel")
        page.click("#create-project")
        page.wait_for_selector("#upload-files")
        page.click("text=Projects")
        page.click("#projects tr:has-text('short-lived') button.danger")
        page.wait_for_selector("#notice:has-text('Deleted short-lived')")
        names = [p["name"] for p in requests.get(training_url(open_portal, "/projects"), timeout=30).json()]
        assert names == [HOSTILE]
    finally:
        open_portal.close()


def test_other_web_sites_cannot_write_and_rebound_names_are_refused(tmp_path: Path) -> None:
    open_portal = Portal(tmp_path / "data", env={"TRAINING_KEY": "", "PREDICTION_KEY": ""})
    try:
        create = training_url(open_portal, "/projects")
        forged = requests.post(create, params={"name": "x"}, headers={"Origin": "http://evil.example"}, timeout=30)
        assert forged.status_code == 403 and forged.json()["code"] == "Forbidden"
        rebound = requests.get(create, headers={"Host": f"evil.example:{open_portal.port}"}, timeout=30)
        assert rebound.status_code == 403 and "loopback" in rebound.json()["message"]
        own = {"Origin": open_portal.url}
        assert requests.post(create, params={"name": "x"}, headers=own, timeout=30).status_code == 200
        assert requests.get(create, headers={"Host": f"localhost:{open_portal.port}"}, timeout=30).status_code == 200
    finally:
        open_portal.close()


def test_session_tokens_are_signed_and_expire() -> None:
    key = b"k"
    token = new_session(key, now=1000.0)
    assert valid_session(key, token, now=1001.0)
    assert not valid_session(b"other key", token, now=1001.0)
    assert not valid_session(key, token, now=1000.0 + 13 * 3600)
    expires, nonce, mac = token.split(".")
    assert not valid_session(key, f"{int(expires) + 9999}.{nonce}.{mac}", now=1001.0)
    assert not valid_session(key, "garbage", now=1001.0)


@pytest.mark.slow
def test_a_second_tab_sees_current_data_and_loses_no_update(browser, tmp_path: Path) -> None:
    open_portal = Portal(tmp_path / "data", env={"TRAINING_KEY": "", "PREDICTION_KEY": ""})
    first, second = browser.new_page(), browser.new_page()
    try:
        made = requests.post(training_url(open_portal, "/projects"), params={"name": "shared"}, timeout=30).json()
        for tab in (first, second):
            tab.goto(open_portal.url)
            tab.click("#projects .project-link")
            tab.wait_for_selector("#tag-name")
        # both tabs add a tag from the page they loaded before the other's change: neither update is lost
        for tab, name in ((first, "from-first"), (second, "from-second")):
            tab.fill("#tag-name", name)
            tab.click("#add-tag")
            tab.wait_for_selector(f".filters a:has-text('{name}')")
        tags = requests.get(training_url(open_portal, f"/projects/{made['id']}/tags"), timeout=30).json()
        assert sorted(t["name"] for t in tags) == ["from-first", "from-second"]
        # the first tab, back in front, shows the second tab's change
        first.bring_to_front()
        first.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
        first.wait_for_selector(".filters a:has-text('from-second')")
    finally:
        first.close()
        second.close()
        open_portal.close()
