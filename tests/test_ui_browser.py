"""`mirror ui` in a real browser: Debian's Chromium driven by Playwright.

One `mirror ui` process and one browser serve the whole module (Chromium is heavy on
two shared cores). Every request the page makes is recorded and must go to the local
origin; every page is scanned with axe-core (shipped in tests/ui_assets) and
photographed at desktop and phone widths into tests/artifacts/ui/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_mirror
from tests.ui_helpers import UiProcess, start_ui_process

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ASSETS = Path(__file__).resolve().parent / "ui_assets"
SHOTS = Path(__file__).resolve().parent / "artifacts" / "ui"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_MS = 60_000
AXE_SOURCE = (ASSETS / "axe.min.js").read_text(encoding="utf-8")

SEED = [
    ("Work again ran late and I missed dinner with my family. Torn between work and family.",
     ["work"]),
    ("A long walk by the river with Sam. I felt calm and grateful for the quiet.", ["walk"]),
    ("My manager asked for one more thing and I said yes, again. Exhausted and resentful.",
     ["work"]),
    ("Honesty matters to me; I told Sam how I really felt and it went well.", ["sam"]),
    ("Another late night at work, missed my daughter's game. Work versus family, again.",
     ["work", "family"]),
]


def _skip_reason() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return None


REASON = _skip_reason()
if REASON is not None:
    print(f"SKIP reason: {REASON}")
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


class Harness:
    def __init__(self, ui: UiProcess, home: Path, browser: Any) -> None:
        self.ui = ui
        self.home = home
        self.browser = browser
        self.requests: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.on("request", lambda request: self.requests.append(request.url))
        self.page = self.context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.page.goto(ui.launch_url)
        self.page.wait_for_selector("body[data-live='1']")

    def go(self, hash_: str) -> Any:
        page = self.page
        before = page.get_attribute("body", "data-rendered")
        page.evaluate("h => { if (location.hash === h) dispatchEvent(new Event('mirror:rerender'));"
                      " else location.hash = h; }", hash_)
        page.wait_for_function(
            "([b, h]) => { const d = document.body; return d.getAttribute('data-rendered') !== b"
            " && !d.hasAttribute('data-busy') && d.getAttribute('data-hash') === h; }",
            arg=[before, hash_])
        return page

    def axe(self, what: str) -> None:
        page = self.page
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            # through DevTools, not a <script> tag: the page's CSP (rightly) refuses those
            page.evaluate(AXE_SOURCE + "\n;true")
        result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        bad = [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
               for v in result["violations"] if v["impact"] in ("serious", "critical")]
        assert not bad, f"{what}: {bad}"

    def shoot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page = self.page
        page.set_viewport_size({"width": 1280, "height": 900})
        page.screenshot(path=str(SHOTS / f"{name}-desktop.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(SHOTS / f"{name}-phone.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})


def wait_count(page: Any, prefix: str) -> None:
    page.wait_for_function(
        "p => document.querySelector('#j-count')?.textContent.startsWith(p)", arg=prefix)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    from playwright.sync_api import sync_playwright

    home = tmp_path_factory.mktemp("ui") / "home"
    _loopback_only(home)
    for text, tags in SEED:
        args = ["reflect", text, "--no-mirrorback"]
        for t in tags:
            args += ["--tag", t]
        done = run_mirror(home, *args, timeout=120)
        assert done.returncode == 0, done.stderr
    ui = start_ui_process(home)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                yield Harness(ui, home, browser)
            finally:
                browser.close()
    finally:
        ui.stop()


def test_write_a_reflection_and_see_its_mirrorback(harness: Harness) -> None:
    page = harness.go("#/write")
    harness.axe("write")
    page.fill("#w-text", "Today I noticed how much I need quiet mornings before work.")
    page.fill("#w-tags", "morning quiet")
    harness.shoot("write")
    page.click("#w-save")
    page.wait_for_selector("#mirrorback[data-done='1']")
    text = page.inner_text("#mirrorback")
    assert len(text.split()) > 3
    assert page.evaluate("localStorage.getItem('mirror.draft')") is None
    harness.shoot("write-mirrorback")


def test_a_draft_survives_closing_the_tab(harness: Harness) -> None:
    page = harness.go("#/write")
    page.fill("#w-text", "half a thought")
    other = harness.context.new_page()
    other.goto(harness.ui.base + "/#/write")
    other.wait_for_selector("#w-text")
    assert other.input_value("#w-text") == "half a thought"
    other.close()
    page.fill("#w-text", "")
    page.evaluate("localStorage.removeItem('mirror.draft')")


def test_a_crisis_reply_is_shown_with_its_resources(harness: Harness) -> None:
    page = harness.go("#/write")
    page.fill("#w-text", "I want to kill myself tonight.")
    page.click("#w-save")
    page.wait_for_selector("#mirrorback[data-done='1']")
    assert page.get_attribute("#mirrorback", "class").split()[0] == "crisis"
    assert page.get_attribute("#mirrorback", "role") == "alert"
    text = page.inner_text("#mirrorback")
    assert re.search(r"findahelpline\.com|emergency|112|988", text), text
    harness.shoot("write-crisis")


def test_search_filter_star_and_page(harness: Harness) -> None:
    page = harness.go("#/journal")
    page.wait_for_selector("#j-count")
    harness.axe("journal")
    harness.shoot("journal")
    page.fill("#j-q", "sam")
    page.click("#j-form button[type=submit]")
    wait_count(page, "2 of")
    marks = page.locator("#j-results mark").all_inner_texts()
    assert marks and all(m.lower() == "sam" for m in marks)
    harness.shoot("journal-search")
    page = harness.go("#/journal?tag=work")
    page.wait_for_selector("#j-count")
    assert page.inner_text("#j-count").startswith("3 of")
    star = page.locator("[data-star]").first
    rid = star.get_attribute("data-star")
    star.click()
    page.wait_for_selector(f"[data-star='{rid}'][aria-pressed='true']")
    page = harness.go("#/journal?starred=1")
    page.wait_for_selector("#j-count")
    assert page.inner_text("#j-count").startswith("1 of")
    assert page.locator(f"[data-id='{rid}']").count() == 1
    page = harness.go("#/journal?from=2000-01-01&to=2000-12-31")
    page.wait_for_selector("#j-count")
    assert page.inner_text("#j-count").startswith("0 of")


def test_open_edit_and_delete_a_reflection(harness: Harness) -> None:
    page = harness.go("#/journal?q=river")
    page.click("#j-results .entry a")
    page.wait_for_selector("#r-text")
    harness.axe("reflection")
    harness.shoot("reflection")
    page.click("#r-edit")
    page.fill("#r-edit-text", "A long walk by the river with Sam. Calm, grateful, and hungry.")
    page.click("text=Save changes")
    page.wait_for_function("() => document.querySelector('#r-text')?.textContent"
                           ".includes('hungry')")
    page.click("#r-delete")
    page.wait_for_selector("#r-delete-dialog")
    removes = page.inner_text("#r-delete-dialog")
    assert "what the engine learned" in removes and "database file" in removes
    harness.axe("delete dialog")
    page.click("#r-delete-yes")
    page.wait_for_function("() => location.hash === '#/journal'")
    page = harness.go("#/journal?q=river")
    page.wait_for_selector("#j-count")
    assert page.inner_text("#j-count").startswith("0 of")


def test_every_chart_and_the_graph(harness: Harness) -> None:
    for tab in ("tensions", "patterns", "mood", "graph", "evolution", "today"):
        page = harness.go(f"#/understand?tab={tab}")
        page.wait_for_selector(f"#tab-{tab}[aria-selected='true']")
        assert "Loading" not in page.inner_text("#u-panel")
        assert page.locator("#u-panel .error").count() == 0
        harness.axe(f"understand {tab}")
        harness.shoot(f"understand-{tab}")
    page = harness.go("#/understand?tab=tensions")
    assert page.locator("svg.tension-chart rect.bar").count() > 0
    page = harness.go("#/understand?tab=mood")
    assert page.locator("svg.mood-chart circle").count() > 0
    page = harness.go("#/understand?tab=graph")
    node = page.locator("svg.graph .node").first
    node.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#g-label")
    old = page.input_value("#g-label")
    page.fill("#g-label", "renamed-by-test")
    page.click("#g-side form button[type=submit] >> nth=0")
    page.wait_for_selector("#g-undo")
    page.click("#g-undo")
    page = harness.go("#/understand?tab=graph")
    labels = page.locator("svg.graph .node text").all_text_contents()
    assert old in labels and "renamed-by-test" not in labels


def test_a_reflection_written_by_another_process_appears_live(harness: Harness) -> None:
    page = harness.go("#/journal")
    page.wait_for_selector("#j-count")
    before = page.evaluate("location.href")
    done = run_mirror(harness.home, "reflect", "written-from-the-cli-canary", "--no-mirrorback",
                      timeout=120)
    assert done.returncode == 0, done.stderr
    page.wait_for_selector("text=written-from-the-cli-canary")
    assert page.evaluate("location.href") == before  # no reload, no navigation


def test_what_the_browser_writes_is_in_the_home(harness: Harness) -> None:
    listed = run_mirror(harness.home, "list", "--json", timeout=120)
    assert "quiet mornings" in listed.stdout


def test_data_page_and_the_model_test(harness: Harness) -> None:
    page = harness.go("#/data")
    page.wait_for_selector("#d-test")
    harness.axe("data")
    harness.shoot("data")
    page.click("#d-test")
    page.wait_for_selector("#d-test-out .mirrorback")
    with page.expect_download() as download:
        page.click("#d-export-json")
    assert download.value.suggested_filename == "mirror-export.json"
    for hash_ in ("#/devices", "#/commons"):
        harness.go(hash_)
        harness.axe(hash_)
        harness.shoot(hash_.strip("#/"))


def test_keyboard_only_walk(harness: Harness) -> None:
    page = harness.go("#/write")
    page.reload()  # focus starts at the top of the document
    page.wait_for_selector("body[data-live='1']:not([data-busy])")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    seen: list[str] = []
    for _ in range(12):
        page.keyboard.press("Tab")
        seen.append(page.evaluate("document.activeElement.getAttribute('data-nav') || ''"))
    assert {"write", "journal", "understand", "devices", "commons", "data"} <= set(seen)
    # write and save with the keyboard alone
    page.focus("#w-text")
    page.keyboard.type("Typed with the keyboard only.")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#mirrorback[data-done='1']")
    # journal: search by keyboard, open the first entry with Enter
    page = harness.go("#/journal")
    page.focus("#j-q")
    page.keyboard.type("keyboard")
    page.keyboard.press("Enter")
    wait_count(page, "1 of")
    page.focus("#j-results .entry a")
    page.keyboard.press("Enter")
    page.wait_for_selector("#r-text")
    # tabs of Understand with the arrow keys
    page = harness.go("#/understand?tab=tensions")
    page.focus("#tab-tensions")
    page.keyboard.press("ArrowRight")
    page.wait_for_selector("#tab-patterns[aria-selected='true']")


def test_import_with_a_preview(harness: Harness) -> None:
    fixture = Path(__file__).resolve().parent / "fixtures" / "import" / "jrnl.json"
    page = harness.go("#/data")
    page.set_input_files("#d-import-file", str(fixture))
    page.click("#d-import button[type=submit]")
    page.wait_for_selector("#d-import-preview")
    preview = page.inner_text("#d-import-preview")
    assert preview.startswith("jrnl: ") and "new reflection" in preview
    new = int(preview.split(": ")[1].split(" ")[0])
    assert new > 0
    before = run_mirror(harness.home, "list", "--json", timeout=120).stdout
    assert before.count('"id"') == len(json.loads(before))  # nothing imported by a preview
    page.click("#d-import-go")
    page.wait_for_selector("#d-import-done")
    assert f"Imported {new} reflections" in page.inner_text("#d-import-done")
    after = json.loads(run_mirror(harness.home, "list", "--json", timeout=120).stdout)
    assert len(after) == len(json.loads(before)) + new


def test_commons_page_reads_this_devices_cache(harness: Harness) -> None:
    page = harness.go("#/commons")
    assert page.locator("h2", has_text="Threads").count() == 1
    assert "You have published nothing." in page.inner_text("main")


def _loopback_only(home: Path) -> None:
    """Sync and pairing on 127.0.0.1, no LAN discovery: nothing leaves this machine."""
    from node.config import Config, save_config
    from node.home import Home

    Home(home).ensure()
    save_config(home / "config.json", Config(sync_listen="127.0.0.1:0", discovery=False))


def test_pairing_two_nodes_on_loopback(harness: Harness, tmp_path: Path) -> None:
    laptop_home = tmp_path / "laptop"
    _loopback_only(laptop_home)
    laptop = start_ui_process(laptop_home)
    try:
        other = harness.browser.new_context(viewport={"width": 1280, "height": 900})
        seen: list[str] = []
        other.on("request", lambda request: seen.append(request.url))
        joiner = other.new_page()
        joiner.set_default_timeout(WAIT_MS)
        joiner.goto(laptop.launch_url)
        joiner.wait_for_selector("body[data-live='1']")
        # the first node shows a code and waits
        page = harness.go("#/devices")
        harness.axe("devices")
        assert page.locator("#d-devices tbody tr").count() == 1
        page.click("#p-start")
        page.wait_for_selector("#p-code")
        code = page.inner_text("#p-code").strip()
        address = page.inner_text("#p-address").split("Address: ")[1].split(" ·")[0]
        assert address.startswith("127.0.0.1:")
        harness.shoot("devices-pairing")
        # the second node joins with it
        joiner.evaluate("location.hash = '#/devices'")
        joiner.wait_for_selector("#j-code")
        joiner.fill("#j-code", code)
        joiner.fill("#j-address", address)
        joiner.fill("#j-name", "laptop")
        joiner.click("#j-join button[type=submit]")
        joiner.wait_for_selector("#j-joined")
        assert "group of 2 devices" in joiner.inner_text("#j-joined")
        # the first node names who joined, live, and lists two devices
        page.wait_for_selector("#p-joined")
        assert "laptop joined" in page.inner_text("#p-joined")
        page.wait_for_function(
            "() => document.querySelectorAll('#d-devices tbody tr').length === 2")
        harness.shoot("devices-joined")
        other.close()
        assert seen and all(u.startswith(laptop.base + "/") for u in seen), seen
    finally:
        laptop.stop()


def test_every_request_went_to_the_local_origin(harness: Harness) -> None:
    assert harness.requests, "no request recorded"
    foreign = [u for u in harness.requests
               if not (u.startswith(harness.ui.base + "/") or u == harness.ui.base)]
    assert not foreign, foreign
