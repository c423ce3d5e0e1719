"""End to end in a real browser: JupyterLab on loopback, the walkthrough's picker rendered.

Starts `jupyter lab` on 127.0.0.1 (free port, random token) over a temporary copy of the
walkthrough notebook and a temporary registry, opens the notebook in Debian's headless
Chromium driven by Playwright (never a downloaded browser), runs the cells up to the picker, and
checks that the widgets rendered and answer a filter change. A screenshot is kept under the
test's tmp folder and outputs/e2e/.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from transferlab import Registry
from transferlab.initialize import initialize

pytestmark = [pytest.mark.browser, pytest.mark.real_model, pytest.mark.training]

ROOT = Path(__file__).resolve().parents[1]
WALKTHROUGH = ROOT / "notebooks" / "walkthrough.ipynb"
PICKER_CELL_MARK = "pick_model("
SERVER_START_S = 60
WIDGET_WAIT_MS = 90_000


def _chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_server(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"jupyter lab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"jupyter lab did not answer within {SERVER_START_S} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's own process group (it and its kernels), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server over a copy of the walkthrough; yields (base url, token)."""
    chromium = _chromium()
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run does it)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (dev extra)")
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed (dev extra)")

    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(WALKTHROUGH, root / WALKTHROUGH.name)
    registry = Registry(tmp_path / "registry.duckdb")
    initialize(registry, profile=False)  # the notebook's ensure_initialized then has nothing to do

    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "TRANSFERLAB_REGISTRY": str(registry.path),
        "TRANSFERLAB_OUTPUTS": str(tmp_path / "outputs"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
        "--ServerApp.port_retries=0",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log = tmp_path / "jupyter-lab.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=sink, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_server(process, f"{base}/api/status?token={token}", log)
        yield base, token, chromium
    finally:
        _stop(process)


RUN_UP_TO_PICKER = """async (mark) => {
    const app = window.jupyterapp;
    const panel = app.shell.currentWidget;
    await panel.context.ready;
    await panel.sessionContext.ready;
    const notebook = panel.content;
    const index = notebook.widgets.findIndex(
        (cell) => cell.model.sharedModel.getSource().includes(mark));
    if (index < 0) { return -1; }
    notebook.activeCellIndex = index;
    await app.commands.execute('notebook:run-all-above');
    await app.commands.execute('notebook:run-cell');
    return index;
}"""


def test_walkthrough_picker_renders_in_jupyterlab(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    base, token, chromium = lab
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    screenshot = tmp_path / "lab_picker.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=args)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(f"{base}/lab/tree/{WALKTHROUGH.name}?token={token}")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell."
                                   "currentWidget && window.jupyterapp.shell.currentWidget"
                                   ".content && window.jupyterapp.shell.currentWidget.content"
                                   ".widgets.length > 0", timeout=WIDGET_WAIT_MS)  # fmt: skip
            index = page.evaluate(RUN_UP_TO_PICKER, PICKER_CELL_MARK)
            assert index > 0, "the walkthrough has no picker cell"

            picker = page.locator(".jupyter-widgets.transferlab-picker")
            picker.wait_for(timeout=WIDGET_WAIT_MS)
            results = picker.locator(".transferlab-picker-results")
            results.wait_for(timeout=WIDGET_WAIT_MS)
            assert "all-MiniLM-L6-v2" in results.inner_text()
            assert picker.locator(".widget-dropdown").count() >= 3
            assert picker.locator(".widget-select").count() == 1
            details = picker.locator(".transferlab-picker-details").inner_text()
            assert "Versions and lineage" in details
            assert picker.get_by_role("button", name="Use this model").count() == 1

            # A real round trip through the kernel: tick "runnable here", the table shrinks.
            picker.locator(".widget-checkbox input[type=checkbox]").check()
            page.wait_for_function(
                "() => document.querySelectorAll('.transferlab-picker-results tbody tr')"
                ".length === 1",
                timeout=WIDGET_WAIT_MS,
            )
            assert "all-MiniLM-L6-v2" in results.inner_text()
            picker.scroll_into_view_if_needed()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    kept = ROOT / "outputs" / "e2e" / screenshot.name
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(screenshot, kept)
    print(f"screenshot: {screenshot} (copy: {kept})")
    assert screenshot.stat().st_size > 10_000
