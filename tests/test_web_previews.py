"""File previews in a real browser (Debian's Chromium through Playwright, the real service): each
kind opened from a plan's page by clicking its name, at 1280 and 390 pixels wide, and the phone
layout that puts the changes before the decision.

Each screenshot is compared with the one kept in ``tests/screens/`` (looked at by a person when
it was made) *roughly*: the layout, not the pixels. Both are shrunk to a grid of grey squares of
:data:`CELL` pixels, and at most :data:`TOLERANCE` per cent of the squares may differ by more
than :data:`SHADES` (a moved block, a missing image or a page that is now blank changes many
squares; a clock, an id or a font's hinting changes few). ``AIRLOCK_UPDATE_SCREENS=1`` writes new references: look at them before you
commit them. A missing reference is written and the test fails, so none is kept unseen.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from airlock.tokens import Role
from previewkit import docx_bytes, pdf_bytes, picture_bytes
from servicekit import DEMO_CASE, Service, running_service
from test_web_browser import CHROMIUM, WAIT_MS, browser, shoot, sign_in

__all__ = ["browser"]  # the fixture, shared with the page's other browser tests

SCREENS = Path(__file__).parent / "screens"
CELL = 16
SHADES = 32
"""How much (of 255) a square's grey may change before it counts as different."""
TOLERANCE = 3.0
"""Per cent of the squares that may differ: the plan's page and a PDF's preview differ in 10%,
the same page with another plan id or clock in under 1%."""
WIDTHS = {"laptop": (1280, 800), "phone": (390, 844)}
SCOPE = f"projects/{DEMO_CASE}"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="needs Debian's chromium (`make browser` installs it); in CI a missing one fails",
)

FILES = {
    "pdf": ("Police Report FINAL final.pdf", "before"),
    "jpeg": ("knee photo.jpg", "before"),
    "heic": ("Photos/IMG_0002.HEIC", "after"),
    "docx": ("letter to adjuster.docx", "before"),
    "text": ("notes from call w client.txt", "after"),
    "other": ("tool.exe", "before"),
}
"""The name each preview is opened by on the plan's page, and the side its link opens."""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("screens") / "ws") as running:
        case = running.ws.root / SCOPE
        (case / "Police Report FINAL final.pdf").write_bytes(
            pdf_bytes(["Police report: collision on Route 9", "Diagram", "Officer notes", "End"])
        )
        (case / "knee photo.jpg").write_bytes(picture_bytes("JPEG", (1200, 900)))
        (case / "IMG_0002.HEIC").write_bytes(picture_bytes("HEIF", (900, 1200)))
        (case / "letter to adjuster.docx").write_bytes(
            docx_bytes(["Dear adjuster,", "We represent Ms Sitgraves in her claim.", "Regards"])
        )
        (case / "tool.exe").write_bytes(b"MZ\x90\x00" * 100)
        body = {
            "scope": SCOPE,
            "description": "File the photos, the police report and a new call note",
            "author": "paralegal-agent",
            "operations": [
                {"op": "mkdir", "path": "Photos"},
                {"op": "move", "source": "IMG_0002.HEIC", "destination": "Photos/IMG_0002.HEIC"},
                {"op": "move", "source": "knee photo.jpg", "destination": "Photos/knee.jpg"},
                {
                    "op": "move",
                    "source": "Police Report FINAL final.pdf",
                    "destination": "2024-07-13 police report.pdf",
                    "reason": "named by date like the other records",
                },
                {
                    "op": "move",
                    "source": "letter to adjuster.docx",
                    "destination": "Letters/adjuster.docx",
                },
                {"op": "delete", "path": "tool.exe", "reason": "a program, not a case record"},
                {
                    "op": "write",
                    "path": "notes from call w client.txt",
                    "text": "Call 2024-08-01: the client's knee still hurts; PT twice a week.\n",
                    "overwrite": True,
                },
            ],
        }
        body["operations"].insert(4, {"op": "mkdir", "path": "Letters"})  # type: ignore[attr-defined]
        response = running.client(Role.AGENT).post(
            "/api/v1/plans", params={"plan_id": "previews"}, json=body
        )
        assert response.status_code == 201 and response.json()["status"] == "validated"
        yield running


def layout(png: bytes) -> list[list[int]]:
    """The screenshot as a grid of grey squares of :data:`CELL` pixels (their mean brightness)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("L")
    small = image.resize(
        (max(1, image.width // CELL), max(1, image.height // CELL)), Image.Resampling.BOX
    )
    data = list(small.tobytes())
    return [data[row * small.width : (row + 1) * small.width] for row in range(small.height)]


def difference(got: list[list[int]], kept: list[list[int]]) -> float:
    """The per cent of squares that differ by more than :data:`SHADES` (100: another size)."""
    if len(got) != len(kept) or len(got[0]) != len(kept[0]):
        return 100.0
    pairs = [pair for rows in zip(got, kept, strict=True) for pair in zip(*rows, strict=True)]
    return 100 * sum(abs(a - b) > SHADES for a, b in pairs) / len(pairs)


def looks_like_kept(page: Page, tmp_path: Path, name: str) -> None:
    """The viewport's screenshot has the layout of ``tests/screens/<name>.png``."""
    got = shoot(page, tmp_path, name, full_page=False).read_bytes()
    kept = SCREENS / f"{name}.png"
    if os.environ.get("AIRLOCK_UPDATE_SCREENS") or not kept.exists():
        SCREENS.mkdir(exist_ok=True)
        existed = kept.exists()
        kept.write_bytes(got)
        if not existed and not os.environ.get("AIRLOCK_UPDATE_SCREENS"):
            pytest.fail(f"no kept screenshot {kept}: one was written; look at it, then commit it")
        return
    off = difference(layout(got), layout(kept.read_bytes()))
    assert off <= TOLERANCE, (
        f"{name}: {off:.1f}% of the layout differs from tests/screens/{name}.png "
        f"(at most {TOLERANCE}%); see {tmp_path / (name + '.png')}; if the change is meant, "
        "rerun with AIRLOCK_UPDATE_SCREENS=1 and look at the new file before committing it"
    )


def opened(page: Page, service: Service, kind: str) -> None:
    """Open the plan's page and click the name of the file of ``kind``."""
    name, side = FILES[kind]
    page.goto(f"{service.url}/ui/plans/previews")
    link = page.locator(f'a.file-link[data-file$="-{side}"]', has_text=name)
    expect(link).to_have_count(1)
    link.click()
    expect(page).to_have_url(re.compile(rf"/ui/plans/previews/files/\d+/{side}$"))
    expect(page.get_by_test_id("preview-name")).to_have_text(name.rpartition("/")[2])


@pytest.mark.parametrize("device", sorted(WIDTHS))
def test_each_kind_of_file_opens_in_its_preview_from_the_plan(
    browser: Browser, service: Service, tmp_path: Path, device: str
) -> None:
    width, height = WIDTHS[device]
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        sign_in(page, service, Role.APPROVER)
        page.goto(f"{service.url}/ui/plans/previews")
        looks_like_kept(page, tmp_path, f"{device}-plan")

        opened(page, service, "pdf")
        pages = page.get_by_test_id("pdf-page")
        expect(pages).to_have_count(3)
        for index in range(3):
            pages.nth(index).scroll_into_view_if_needed()
            page.wait_for_function(
                "img => img.complete && img.naturalWidth === 1000",
                arg=pages.nth(index).element_handle(),
            )
        page.evaluate("window.scrollTo(0, 0)")
        expect(page.get_by_test_id("preview-kind")).to_have_text("PDF, 4 pages")
        looks_like_kept(page, tmp_path, f"{device}-pdf")
        page.get_by_test_id("more-pages").click()
        expect(page.get_by_test_id("pdf-page")).to_have_count(4)

        for kind, pixels in (("jpeg", 1200), ("heic", 900)):
            opened(page, service, kind)
            picture = page.get_by_test_id("picture")
            page.wait_for_function(
                f"img => img.complete && img.naturalWidth === {pixels}",
                arg=picture.element_handle(),
            )
            looks_like_kept(page, tmp_path, f"{device}-{kind}")

        opened(page, service, "docx")
        expect(page.get_by_test_id("preview-text")).to_contain_text("We represent Ms Sitgraves")
        looks_like_kept(page, tmp_path, f"{device}-docx")

        opened(page, service, "text")
        expect(page.get_by_test_id("preview-text")).to_contain_text("PT twice a week")
        looks_like_kept(page, tmp_path, f"{device}-text")

        opened(page, service, "other")
        expect(page.get_by_test_id("preview-other")).to_be_visible()
        with page.expect_download() as download:
            page.get_by_test_id("download").click()
        assert download.value.suggested_filename == "tool.exe"
        looks_like_kept(page, tmp_path, f"{device}-other")
    finally:
        context.close()


def test_on_a_phone_the_changes_come_before_the_decision(
    browser: Browser, service: Service
) -> None:
    for (width, height), changes_first in ((WIDTHS["phone"], True), (WIDTHS["laptop"], False)):
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        try:
            sign_in(page, service, Role.APPROVER)
            page.goto(f"{service.url}/ui/plans/previews")
            changes = page.locator("#changes-title").bounding_box()
            approve = page.get_by_role("button", name="Approve").bounding_box()
            assert changes is not None and approve is not None
            if changes_first:
                assert changes["y"] < approve["y"]
                expect(page.get_by_role("link", name="Go to the decision ↓")).to_be_visible()
            else:  # side by side: the decision to the right, at the top
                assert approve["x"] > changes["x"] + changes["width"] / 2
                expect(page.get_by_role("link", name="Go to the decision ↓")).to_be_hidden()
        finally:
            context.close()
