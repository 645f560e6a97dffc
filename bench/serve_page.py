"""The screenshot of `nanofm serve`'s page in the docs (docs/serve-page.png): the demo's trained models served by a
real `nanofm serve`, asked one question each in headless Chromium (Debian's chromium and chromium-driver).

  python bench/serve_page.py runs/demo --out docs/serve-page.png
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

QUESTIONS = {"fill-mask": "Abra el menú [MASK] y elija Guardar.", "translation": "¿Dónde está el menú Archivo?",
             "text-to-image": "un vestido rojo"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("demo", type=Path, help="a demo's output folder (runs/demo)")
    p.add_argument("--out", type=Path, default=Path("docs/serve-page.png"))
    p.add_argument("--fmnist", type=Path, default=Path("data/fashion-mnist"), help="a test image comes from here")
    a = p.parse_args()
    runs = [a.demo / r for r in ("bert/pretrain", "translation/translate-transformer", "vision/mae-finetune", "t2i/unclip")]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "nanofm", "serve", *map(str, runs), "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        image = a.out.with_suffix(".input.png")
        from nanofm.data.fashion_mnist import load_split

        test = load_split(a.fmnist, "test")
        Image.fromarray(test.images[0, 0].numpy()).resize((112, 112)).save(image)  # uint8 (H, W): an ankle boot
        opts = webdriver.ChromeOptions()
        opts.binary_location = shutil.which("chromium")
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=900,2300"):
            opts.add_argument(flag)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
        try:
            driver.get(url + "/")
            wait = WebDriverWait(driver, 120)
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "section.card")) == 4)
            for kind in ("fill-mask", "translation", "image-classification", "text-to-image"):
                card = driver.find_element(By.CSS_SELECTOR, f"section[data-kind={kind}]")
                if kind in QUESTIONS:
                    box = card.find_element(By.CSS_SELECTOR, "[name=text]")
                    box.clear()
                    box.send_keys(QUESTIONS[kind])
                    card.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
                else:
                    card.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(image.resolve()))
                    card.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
                wait.until(lambda d: card.find_elements(By.CSS_SELECTOR, ".out .bar, .out table.heat, .out img.gen, .err"))
            time.sleep(1)
            a.out.write_bytes(driver.get_screenshot_as_png())
        finally:
            driver.quit()
        image.unlink()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    print(f"written {a.out}")


if __name__ == "__main__":
    main()
