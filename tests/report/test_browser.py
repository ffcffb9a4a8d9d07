"""The report in a real browser: headless Chromium lays the page out, and a script checks that every
plot decoded and is on screen and that the key numbers are visible text.

Chromium comes from Debian (`apt-get install chromium chromium-driver`, done by `.ci/run`); the test
drives it with `--dump-dom` rather than through selenium: one subprocess, no driver session.
"""

import json
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

CHROMIUM = next(
    (shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)),
    None,
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium not installed (apt-get install -y chromium chromium-driver; .ci/run does this)",
)

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1200,900",
]

# Runs after the page (and its data-URI images) loaded; writes its findings into the DOM.
CHECK_SCRIPT = """
<script>
window.addEventListener("load", () => {
  const visible = (el) => {
    const r = el.getBoundingClientRect(), s = getComputedStyle(el);
    return r.width > 50 && r.height > 50 && s.display !== "none" && s.visibility !== "hidden";
  };
  const imgs = [...document.querySelectorAll("img.plot")].map((img) => ({
    id: img.id, loaded: img.complete && img.naturalWidth > 0, visible: visible(img),
    width: img.naturalWidth, height: img.naturalHeight,
  }));
  const out = document.createElement("pre");
  out.id = "browser-check";
  out.textContent = JSON.stringify({ imgs: imgs, text: document.body.innerText });
  document.body.appendChild(out);
});
</script>
"""


def chromium(*args: str, timeout: int = 90) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def test_plots_and_numbers_are_visible_in_chromium(report_html, toy_dataset, tmp_path):
    from policyfit.diagnostics.card import diagnose

    page = tmp_path / "checked.html"
    page.write_text(report_html.read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    result = chromium("--virtual-time-budget=10000", "--dump-dom", page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    start = result.stdout.find('<pre id="browser-check">')
    assert start >= 0, "the check script did not run:\n" + result.stdout[-2000:]
    import html

    raw = result.stdout[
        start + len('<pre id="browser-check">') : result.stdout.find("</pre>", start)
    ]
    found = json.loads(html.unescape(raw))

    imgs = {img["id"]: img for img in found["imgs"]}
    expected = {
        "plot-returns-0",
        "plot-lengths-0",
        "plot-coverage-0",
        "plot-anomalies-0",
        "plot-obs-marginals-0",
        "plot-action-marginals-0",
        "plot-learning-curves",
        "plot-comparison",
        "plot-losses-0",
        "plot-losses-1",
    }
    assert expected <= set(imgs)
    for img in imgs.values():
        assert img["loaded"] and img["visible"], img

    text = found["text"]
    card = diagnose(toy_dataset, reference=toy_dataset)
    for needle in (
        "TQ (trajectory quality)",
        f"{card.tq['value']:.3f}",
        "SACo (state-action coverage)",
        "action consistency",
        f"{card.action_consistency['consistency']:.3f}",
        "60.0",  # final normalized score of the iql run
        card.verdict[0][:40],
    ):
        assert needle in text, needle


def test_screenshot_is_not_blank(report_html, tmp_path):
    import matplotlib.image

    shot = tmp_path / "shot.png"
    result = chromium(f"--screenshot={shot}", report_html.as_uri())
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    pixels = matplotlib.image.imread(shot)[..., :3]
    # a page of text and plots: many distinct colours, not a blank or error page
    assert pixels.std() > 0.05
    assert len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 200
