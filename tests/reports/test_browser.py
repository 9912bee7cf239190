"""A generated report opened in real headless Chromium: no errors, every image loads, not blank."""
import io

import pytest
from PIL import Image, ImageStat

from reports import render
from tests.reports.chromium import CHROMIUM, Browser, check_page
from tests.reports.synthetic import SyntheticRun, write_run

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package `chromium`)"),
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield chromium
    chromium.close()


def _not_blank(png: bytes) -> bool:
    image = Image.open(io.BytesIO(png)).convert("L")
    return max(ImageStat.Stat(image).stddev) > 5.0 and len(image.getcolors(1 << 16) or []) > 20


async def test_report_opens_without_errors_and_every_image_loads(browser, tmp_path):
    legacy = write_run(tmp_path / "legacy", SyntheticRun(
        name="staging <day>", profile="legacy", duration=3600, storm=(100, 130, 20), closes={"4401": [5, 6]},
        faults=[{"at": 100, "for": 60, "kind": "partition"}], lost={2}, duplicated={3},
        gates=[{"name": "p95", "verdict": "fail", "strict": True, "observed": 900, "op": ">=", "threshold": 7200}]))
    fixed = write_run(tmp_path / "fixed", SyntheticRun(name="staging <day>", profile="fixed", duration=3600))
    index = render([legacy, fixed], tmp_path / "out")

    page = await check_page(browser.ws_url, index.as_uri())

    assert page.errors == []
    assert len(page.images) >= 5
    assert all(img["complete"] and img["width"] > 0 for img in page.images), page.images
    assert _not_blank(page.screenshot)
    # at the page's width: no image runs off the page, none is blown up past its pixels (blurred labels)
    assert page.width["scroll"] <= page.width["inner"], page.width
    for img in page.images:
        assert img["right"] <= page.width["inner"] and img["shown"] <= img["width"], img


async def test_report_images_have_no_overlapping_labels(browser, tmp_path):
    """A crowded report (three runs, four faults within 20 s, several close codes, failed count gates):
    no text is drawn over another on any figure, and the page shows them all."""
    from reports.record import load_run
    from reports.render import build

    faults = [{"at": 100 + 5 * i, "for": 3, "kind": k}
              for i, k in enumerate(["partition", "latency", "server_restart", "token_expiry"])]
    gates = [{"name": f"gate {i}", "verdict": "fail", "strict": True, "observed": 9, "op": "==", "threshold": 0,
              "provenance": {"metric": "http_403", "stat": "count", "where": {"busiest_seconds": [[120 + i, 9]]}}}
             for i in range(3)]
    dirs = [write_run(tmp_path / name, SyntheticRun(
        name="crowded", profile=profile, duration=1800, storm=(100, 130, 20), faults=faults, gates=gates,
        closes={"4401": [5, 6], "1006": [7], "1012": [300], "1013": [301]}, lost={2}, duplicated={3},
        failed_handshakes=[403] * 50)) for name, profile in (("legacy", "legacy"), ("fixed", "fixed"), ("third", "fixed"))]
    doc = build([load_run(d) for d in dirs], [])
    assert len(doc.images()) >= 8
    assert {image.name: image.overlaps for image in doc.images()} == {image.name: () for image in doc.images()}
    page = await check_page(browser.ws_url, render(dirs, tmp_path / "out").as_uri())
    assert page.errors == [] and len(page.images) == len(doc.images())


def test_the_overlap_check_catches_labels_drawn_over_each_other():
    from matplotlib.figure import Figure

    from reports.figures import overlapping_texts

    fig = Figure(figsize=(4, 3))
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, "partition", transform=ax.transAxes, rotation=90)
    ax.text(0.505, 0.5, "latency", transform=ax.transAxes, rotation=90)
    assert ("partition", "latency") in overlapping_texts(fig)


async def test_the_check_catches_a_broken_page(browser, tmp_path):
    """The same check on a page with a missing image and a console error must see both."""
    broken = tmp_path / "broken.html"
    broken.write_text('<!DOCTYPE html><html><body><img src="missing.png">'
                      '<script>console.error("boom")</script></body></html>')
    page = await check_page(browser.ws_url, broken.as_uri())
    assert any("boom" in e for e in page.errors)
    assert any("missing.png" in e or "ERR_FILE_NOT_FOUND" in e for e in page.errors), page.errors
    assert page.images[0]["width"] == 0
    assert not _not_blank(page.screenshot)
