"""A whole report from the shared Azure trace: its files, its content, and the HTML page as a real
headless Chromium renders it.

The browser is Debian's ``chromium`` (``.ci/run`` installs it), driven over the DevTools protocol
with websocket-client: the page is loaded from disk, every plot must be a decoded ``<img>`` with a
non-zero rendered size, visible, and not blank in the screenshot, and the page must fetch nothing
but itself. The full-page screenshot is kept as a test artifact in ``test-artifacts/``
(gitignored). Without chromium the browser test skips with the reason, unless CI or
REQUIRE_SHARED is set, where it fails.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autoscaler.core.slo import SloSpec
from autoscaler.offline.report import build, contents, history, replay
from autoscaler.offline.report.html_page import png_size
from autoscaler.perf.profiles import get_profile
from autoscaler.simulation.oracle import work_weights
from autoscaler.simulation.runner import RunRequest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
PLOTS = ("curve", "demand", "accuracy", "replicas")


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[contents.Report, contents.ReportFiles, list[tuple[str, float]]]:
    from autoscaler.shared_data import shared_path

    try:
        path = shared_path("traces/azure2023_conv.csv")
    except FileNotFoundError as exc:
        if os.environ.get("REQUIRE_SHARED", "") not in ("", "0"):
            pytest.fail(f"REQUIRE_SHARED=1 but {exc}")
        pytest.skip(str(exc))
    profile, slo = get_profile(), SloSpec()
    hist = history.from_trace(path, weights=work_weights(profile, slo), workload="llm/chat")
    req = RunRequest(
        policies=replay.policy_labels([0.85, 1.15], ["kpa"]), profile=profile, slo=slo, seeds=1
    )
    calls: list[tuple[str, float]] = []

    def progress(name: str, frac: float) -> None:
        calls.append((name, frac))

    report = build.build_report(hist, req, progress=progress)
    files = build.write_report(report, tmp_path_factory.mktemp("report"), progress=progress)
    return report, files, calls


def test_every_file_is_written(built):
    _, files, _ = built
    assert set(files.plots) == set(PLOTS)
    for path in (
        files.html,
        files.markdown,
        files.json,
        files.hpa,
        files.keda,
        *files.plots.values(),
    ):
        assert path.is_file() and path.stat().st_size > 0, path
    for png in files.plots.values():
        width, height = png_size(png.read_bytes())
        assert width >= 600 and height >= 200


def test_progress_names_every_step_it_promised(built):
    report, _, calls = built
    finished = [name for name, frac in calls if frac >= 1.0]
    # the reading step is the CLI's; build and write report the rest
    assert len(finished) == build.step_count("requests", report.request) - 0
    assert finished[0] == build.BACKTEST and finished[-1] == build.WRITING
    assert all(0.0 <= frac <= 1.0 for _, frac in calls)


def test_the_page_is_self_contained_and_shows_every_plot(built):
    _, files, _ = built
    page = files.html.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", page)
    assert "<script" not in page.lower()
    for name in PLOTS:
        match = re.search(
            rf'<figure id="plot-{name}"><img src="data:image/png;base64,([^"]+)"', page
        )
        assert match, name
        assert base64.b64decode(match.group(1)) == files.plots[name].read_bytes()


def test_the_page_and_the_summary_say_the_same(built):
    report, files, _ = built
    page = files.html.read_text(encoding="utf-8")
    summary = files.markdown.read_text(encoding="utf-8")
    s = report.settings
    for text in (
        "Capacity report: llm/chat",
        s.headroom_reason,
        s.min_reason,
        f"{s.headroom:g} ({s.policy})",
        "apiVersion: keda.sh/v1alpha1",
        "workload: llm/chat",
    ):
        assert text in summary, text
        assert text.replace("'", "&#x27;").replace('"', "&quot;") in page, text
    for name, path in files.plots.items():
        assert f"](plots/{path.name})" in summary, name


def test_the_json_has_the_simulate_contract_and_the_figures(built):
    report, files, _ = built
    data = json.loads(files.json.read_text())
    assert set(data["simulation"]["policies"]) == {
        "oracle",
        "oracle-late",
        "forecast@0.85",
        "forecast@1.15",
        # a baseline named without a setting replays its whole sweep: its front on the curve
        *(f"kpa@{v}" for v in (8, 16, 32, 64, 128)),
    }
    for figs in data["simulation"]["policies"].values():
        assert 0.0 <= figs["slo_attainment"] <= 1.0 and figs["gpu_hours"] > 0
    assert data["series"]["interval_s"] == 15.0 and data["series"]["mode"] == "requests"
    acc = data["accuracy"]
    assert acc["lead_steps"] == 16 and len(acc["by_horizon"]) == 32
    assert acc["reference"] == "last-value"
    wql = [h["models"]["policy"]["wql"] for h in acc["by_horizon"]]
    assert all(w is not None and w > 0 for w in wql)
    assert wql[-1] > wql[0]  # an hour of Azure: further ahead is harder
    assert data["settings"]["policy"] == report.settings.policy


def test_the_recommendation_is_consistent_with_the_replay(built):
    report, _, _ = built
    s = report.settings
    figs = report.simulation["policies"][s.policy]
    assert s.max_replicas > figs["max_replicas"] >= s.min_replicas >= 1
    if s.meets_target:
        assert figs["slo_attainment"] >= report.request.slo.attainment_target
    acc = report.accuracy
    assert acc is not None
    assert acc.path.shape == (acc.path_index.size, 5)
    assert np.all(np.diff(acc.path, axis=1) >= -1e-9)  # quantiles never cross


def test_manifests_on_disk_are_the_reports(built):
    report, files, _ = built
    assert files.hpa.read_text() == report.hpa_yaml
    assert files.keda.read_text() == report.keda_yaml
    assert f"minReplicas: {max(1, report.settings.min_replicas)}" in report.hpa_yaml


# --- the page in a real browser -----------------------------------------------------------


def _must_not_skip() -> bool:
    return any(os.environ.get(k, "") not in ("", "0", "false") for k in ("CI", "REQUIRE_SHARED"))


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    reason = (
        "chromium is not installed (apt-get install -y --no-install-recommends chromium; "
        ".ci/run does it)"
    )
    if _must_not_skip():
        pytest.fail(f"CI/REQUIRE_SHARED is set but {reason}")
    pytest.skip(reason)


class DevTools:
    """One page of a headless Chromium, over the DevTools protocol (a websocket)."""

    def __init__(self, url: str) -> None:
        import websocket  # websocket-client

        self.ws = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        mine = self.next_id
        self.ws.send(json.dumps({"id": mine, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == mine:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                result: dict[str, Any] = dict(message.get("result", {}))
                return result
            self.events.append(message)

    def wait_for(self, event: str, deadline_s: float = 60.0) -> dict[str, Any]:
        end = time.monotonic() + deadline_s
        for message in self.events:
            if message.get("method") == event:
                return message
        while time.monotonic() < end:
            message = dict(json.loads(self.ws.recv()))
            self.events.append(message)
            if message.get("method") == event:
                return message
        raise AssertionError(f"no {event} within {deadline_s} s")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    binary = _chromium()
    profile = tmp_path / "chromium-profile"
    proc = subprocess.Popen(
        [
            binary,
            "--headless",
            "--no-sandbox",  # tests may run as root (CI containers)
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
            f"--user-data-dir={profile}",
            "--window-size=1200,900",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the renderers end with it
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.is_file() or not port_file.read_text().strip():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"chromium did not start (exit code {proc.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as answer:
            targets = json.load(answer)
        (page,) = [t for t in targets if t["type"] == "page"]
        tools = DevTools(page["webSocketDebuggerUrl"])
        try:
            yield tools
        finally:
            tools.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


_PLOT_BOXES = """
JSON.stringify([...document.querySelectorAll('figure img, svg')].map(el => {
  const r = el.getBoundingClientRect();
  const s = getComputedStyle(el);
  return {
    id: (el.closest('figure') || {}).id || null, tag: el.tagName.toLowerCase(),
    x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height,
    decoded: el.tagName === 'IMG' ? el.complete && el.naturalWidth > 0 : true,
    visible: s.display !== 'none' && s.visibility === 'visible' && Number(s.opacity) > 0,
  };
}))
"""


def _crop_std(shot: np.ndarray, box: dict[str, float]) -> float:
    y0, x0 = int(box["y"]) + 2, int(box["x"]) + 2
    y1, x1 = int(box["y"] + box["height"]) - 2, int(box["x"] + box["width"]) - 2
    return float(shot[y0:y1, x0:x1, :3].std())


def test_chromium_renders_every_plot_visibly(built, browser):
    import matplotlib.image as mpimg

    _, files, _ = built
    browser.call("Page.enable")
    browser.call("Network.enable")
    browser.call("Page.navigate", url=files.html.resolve().as_uri())
    browser.wait_for("Page.loadEventFired")
    boxes = json.loads(browser.evaluate(_PLOT_BOXES))
    by_id = {b["id"]: b for b in boxes}
    assert sorted(by_id) == sorted(f"plot-{name}" for name in PLOTS), boxes
    for box in boxes:
        assert box["decoded"] and box["visible"], box
        assert box["width"] > 100 and box["height"] > 50, box

    # what the page fetched: itself, and the images from their data: URIs
    requested = [
        e["params"]["request"]["url"]
        for e in browser.events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    assert [u for u in requested if not u.startswith(("file://", "data:"))] == []

    metrics = browser.call("Page.getLayoutMetrics")
    size = metrics["cssContentSize"]
    width, height = 1200, int(size["height"]) + 1
    browser.call(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=height,
        deviceScaleFactor=1,
        mobile=False,
    )
    shot = base64.b64decode(
        browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
    )
    ARTIFACTS.mkdir(exist_ok=True)
    artifact = ARTIFACTS / "report-chromium.png"
    artifact.write_bytes(shot)
    print(f"screenshot of the report page: {artifact}")
    assert png_size(shot) == (width, height)
    pixels = mpimg.imread(io.BytesIO(shot), format="png")
    boxes = json.loads(browser.evaluate(_PLOT_BOXES))  # after the resize
    for box in boxes:
        assert _crop_std(pixels, box) > 0.05, f"{box['id']} looks blank on screen"
    # and a stretch of plain page background really is plain (the check can fail)
    top = min(b["y"] for b in boxes)
    assert float(pixels[5:25, 5:60, :3].std()) < 0.01 < top


def test_a_history_too_short_to_backtest_still_gets_a_report(tmp_path):
    from autoscaler.offline.series import trace_series
    from tests.simhelpers import poisson_trace

    profile, slo = get_profile(), SloSpec()
    weights = work_weights(profile, slo)
    trace = poisson_trace(rate=2.0, duration=150.0, prompt=800, output=120)
    hist = history.History(
        workload="llm/tiny",
        source={"kind": "trace", "path": "poisson", "format": "synthetic"},
        interval_s=15.0,
        demand=trace_series(trace, interval_s=15.0, kind="token_work", weights=weights),
        weights=weights,
        trace=trace,
    )
    req = RunRequest(policies=["forecast@1"], profile=profile, slo=slo, seeds=1)
    report = build.build_report(hist, req)
    assert report.accuracy is None and "too short to backtest" in (report.accuracy_note or "")
    files = build.write_report(report, tmp_path)
    assert set(files.plots) == {"curve", "demand", "replicas"}
    page = files.html.read_text(encoding="utf-8")
    assert "No backtest: the history has 10 intervals of 15 s" in page
    assert json.loads(files.json.read_text())["accuracy"] is None
