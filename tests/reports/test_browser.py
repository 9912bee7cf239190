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
