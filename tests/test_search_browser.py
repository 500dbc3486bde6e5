"""The search page in a real browser: Debian's Chromium driven by Selenium through chromedriver (`apt-get install
chromium chromium-driver`; .ci/run installs them). Skipped, with the reason, where either is missing."""
import os
import shutil
import tempfile

import pytest

from search.server import SearchService, create_app
from tests.search_helpers import ToneModel, running_server, tone_index

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required", "--window-size=1100,1400"]


@pytest.fixture()
def browser(tmp_path):
    if not (CHROMIUM and DRIVER):
        pytest.skip("no Chromium browser and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)  # an empty profile each run
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=DRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_search_listen_more_like_this_classify_and_upload_in_chromium(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    folder, _, index = tone_index(tmp_path)
    app = create_app(SearchService(index, ToneModel(), tmp_path / "cache"))
    wait = WebDriverWait(browser, 20)
    with running_server(app) as base:
        browser.get(base + "/")
        wait.until(EC.text_to_be_present_in_element((By.ID, "info"), "6 sounds"))

        box = browser.find_element(By.ID, "query")
        box.send_keys("a tone at 800 Hz")
        browser.find_element(By.ID, "search-button").click()
        wait.until(EC.text_to_be_present_in_element((By.ID, "status"), "sounds for"))
        cards = browser.find_elements(By.CSS_SELECTOR, ".result")
        assert len(cards) == 6 and cards[0].get_attribute("data-id") == "sub/tone800.ogg"
        assert "tone800" in cards[0].find_element(By.CSS_SELECTOR, ".caption").text

        # playback: the first result's audio element loads and plays without a media error
        state = browser.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const a = document.querySelector('.result audio');
            a.addEventListener('error', () => done({error: a.error && a.error.code}));
            a.addEventListener('timeupdate', () => { if (a.currentTime > 0) done({time: a.currentTime,
                ready: a.readyState, error: a.error}); });
            a.play().catch((e) => done({error: String(e)}));
            setTimeout(() => done({timeout: true, ready: a.readyState, error: a.error && a.error.code}), 15000);
        """)
        assert state.get("error") is None and state.get("time", 0) > 0, state
        wait.until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('.result img')].every(i => i.complete && i.naturalWidth === 600)"))

        # more like this: the results become the sounds closest to the first one, without it
        cards[0].find_element(By.CSS_SELECTOR, "button.more").click()
        wait.until(EC.text_to_be_present_in_element((By.ID, "status"), "Sounds like"))
        ids = [c.get_attribute("data-id") for c in browser.find_elements(By.CSS_SELECTOR, ".result")]
        assert len(ids) == 5 and "sub/tone800.ogg" not in ids

        # zero-shot labels over the shown results
        browser.find_element(By.ID, "labels").send_keys("200 Hz, 1600 Hz, 6400 Hz")
        browser.find_element(By.ID, "classify-button").click()
        wait.until(EC.text_to_be_present_in_element((By.ID, "status"), "classified 5 sounds"))
        best = {c.get_attribute("data-id"): c.find_element(By.CSS_SELECTOR, ".labels .best").text
                for c in browser.find_elements(By.CSS_SELECTOR, ".result")}
        assert best["tone200.wav"].startswith("200 Hz") and best["tone6400.flac"].startswith("6400 Hz")

        # a sound file of one's own, chosen in the file input: the most similar indexed sound comes first
        browser.find_element(By.ID, "file").send_keys(str(folder / "tone1600.wav"))
        wait.until(EC.text_to_be_present_in_element((By.ID, "status"), "Sounds like your file tone1600.wav"))
        first = browser.find_element(By.CSS_SELECTOR, ".result")
        assert first.get_attribute("data-id") == "tone1600.wav"
        if os.environ.get("WT5K_SCREENSHOT"):
            browser.save_screenshot(os.environ["WT5K_SCREENSHOT"])
