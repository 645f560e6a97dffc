"""The page in a real browser: headless Chromium (Debian's chromium and chromium-driver, driven by Selenium)
opens the page of a real `nanofm serve` process, fills a mask, translates, uploads an image and draws a
caption, and sees each answer appear. NANOFM_SERVE_SCREENSHOT=PATH keeps its screenshot (docs/serve-page.png)."""

from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.serve.conftest import start_server, stop_server

webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[dev]')")
pytestmark = pytest.mark.skipif(not shutil.which("chromium") or not shutil.which("chromedriver"),
                                reason="needs Debian's chromium and chromium-driver (make test installs them)")


def _browser():
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=900,1900"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def test_the_page_answers_every_kind_in_headless_chromium(tiny_runs, tmp_path):
    # the bug it catches: a page that renders but whose scripts fail (a wrong endpoint, a JSON shape the page
    # misreads, an upload sent as JSON), seen only in a browser
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    proc, url = start_server([tiny_runs[k] for k in ("fill", "translate", "vit", "t2i")])
    image = tmp_path / "shoe.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28), np.uint8)).save(image)
    driver = _browser()
    try:
        driver.get(url + "/")
        wait = WebDriverWait(driver, 30)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "section.card")) == 4)
        card = {k: driver.find_element(By.CSS_SELECTOR, f"section[data-kind={k}]") for k in
                ("fill-mask", "translation", "image-classification", "text-to-image")}

        def ask(kind: str, answer_css: str, text: str | None = None) -> list:
            if text is not None:
                box = card[kind].find_element(By.CSS_SELECTOR, "[name=text]")
                box.clear()
                box.send_keys(text)
            card[kind].find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            return wait.until(lambda d: card[kind].find_elements(By.CSS_SELECTOR, answer_css)
                              or card[kind].find_elements(By.CSS_SELECTOR, ".err"))

        bars = ask("fill-mask", ".out .bar", "El niño [MASK] pan.")
        assert len(bars) == 5 and bars[0].text.endswith("%")  # top words with their probabilities
        ask("translation", ".out table.heat", "Soy estudiante.")
        assert card["translation"].find_element(By.CSS_SELECTOR, ".out .answer").text.strip()
        card["image-classification"].find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(image))
        assert len(ask("image-classification", ".out .bar")) == 5
        card["text-to-image"].find_element(By.CSS_SELECTOR, "[name=steps]").clear()
        card["text-to-image"].find_element(By.CSS_SELECTOR, "[name=steps]").send_keys("3")
        (img,) = ask("text-to-image", ".out img.gen", "un vestido rojo")
        wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img))
        assert driver.execute_script("return arguments[0].naturalWidth", img) == 2 * 32  # two 32x32 images side by side
        assert not driver.find_elements(By.CSS_SELECTOR, ".err")
        png = driver.get_screenshot_as_png()
    finally:
        driver.quit()
        stop_server(proc)
    shot = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert shot.shape[0] > 500 and shot.std() > 20 and len(np.unique(shot.reshape(-1, 3), axis=0)) > 50  # not blank
    if os.environ.get("NANOFM_SERVE_SCREENSHOT"):
        with open(os.environ["NANOFM_SERVE_SCREENSHOT"], "wb") as f:
            f.write(png)
