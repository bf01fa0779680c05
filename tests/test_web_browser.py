"""The review web page in a real browser: Debian's headless Chromium driven by Playwright, against
the real service (uvicorn in a thread, :mod:`servicekit`) over the sample law-firm workspace.

Screenshots go to the test's tmp_path and a few are copied to /tmp/airlock-screens/ for a person
to look at. Waits use Playwright's own expectations (each with a deadline), never sleeps.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from airlock.locks import scope_lock
from airlock.sample import DEMO_CASE, sample_reorganisation
from airlock.tokens import Role
from servicekit import Service, running_service
from support import snapshot

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENS = Path("/tmp/airlock-screens")
PLAN_ID = "sitgraves-reorganise"
CASE = f"projects/{DEMO_CASE}"
WAIT_MS = 30_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="needs Debian's chromium (`make browser` installs it); in CI a missing one fails",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with running_service(tmp_path / "ws") as running:
        record = running.ws.submit(
            sample_reorganisation(), plan_id=PLAN_ID, actor="paralegal-agent"
        )
        running.ws.validate(record.id, actor="paralegal-agent")
        yield running


def shoot(page: Page, tmp_path: Path, name: str, *, full_page: bool = True) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    SCREENS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SCREENS / path.name)
    return path


def sign_in(page: Page, service: Service, role: Role) -> None:
    page.goto(service.url + "/ui/")
    expect(page).to_have_url(re.compile(r"/ui/sign-in\?next="))
    page.get_by_label("Access token").fill(service.tokens[role])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Plans", exact=True)).to_be_visible()


def no_horizontal_overflow(page: Page) -> bool:
    result: bool = page.evaluate(
        "() => document.documentElement.scrollWidth <= window.innerWidth"
        " && document.body.scrollWidth <= window.innerWidth"
    )
    return result


def test_approver_reviews_approves_applies_and_rolls_back(
    browser: Browser, service: Service, tmp_path: Path
) -> None:
    case = service.root / CASE
    before = snapshot(case)
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        sign_in(page, service, Role.APPROVER)
        expect(page.locator(".tab.is-current")).to_contain_text("Needs review")
        shoot(page, tmp_path, "laptop-1-plans", full_page=False)
        page.get_by_role("link", name=re.compile("File the Sitgraves MVA case")).click()
        expect(page).to_have_url(re.compile(f"/ui/plans/{PLAN_ID}$"))

        # The review: before and after side by side, deletions marked in words, moves from -> to.
        before_tree, after_tree = (
            page.get_by_test_id("tree-before"),
            page.get_by_test_id("tree-after"),
        )
        expect(before_tree).to_be_visible()
        expect(after_tree).to_be_visible()
        deleted = before_tree.locator(".m-deleted")
        expect(deleted).to_have_count(4)
        for index in range(4):
            expect(deleted.nth(index)).to_contain_text("deleted")
        expect(before_tree.locator(".m-deleted", has_text="Thumbs.db")).to_be_visible()
        expect(after_tree).not_to_contain_text("Thumbs.db")
        expect(after_tree.locator(".m-moved", has_text="2024-07-13 ER visit.pdf")).to_contain_text(
            "from SCAN_20240714_0001.pdf"
        )
        expect(page.locator("tr.ch-delete")).to_have_count(4)
        expect(page.locator("tr.ch-move").first).to_contain_text("→")
        expect(page.get_by_text("Needs a person’s approval")).to_be_visible()
        expect(page.locator(".preview-text").first).to_contain_text("case file index")
        shoot(page, tmp_path, "laptop-2-review", full_page=False)
        page.locator("section[aria-labelledby=trees-title]").screenshot(
            path=str(tmp_path / "laptop-3-trees.png")
        )
        shutil.copy(tmp_path / "laptop-3-trees.png", SCREENS / "laptop-3-trees.png")

        # Approve with a comment.
        page.get_by_label("Comment").fill(
            "Checked: the deletions are scanner junk and a duplicate."
        )
        page.get_by_role("button", name="Approve").click()
        expect(page.get_by_role("status")).to_contain_text("Approved")
        expect(page.get_by_test_id("status")).to_have_text("Approved")
        expect(page.locator(".decided-approved")).to_contain_text("scanner junk")

        # Apply, and watch the progress: the scope is held busy so the page sees the job running,
        # then released; the page's script follows the job to the end and reloads.
        with scope_lock(service.ws.state_dir / "locks", tuple(CASE.split("/")), timeout=10):
            page.get_by_role("button", name="Apply now").click()
            expect(page).to_have_url(re.compile(r"\?job=job_"))
            expect(page.locator("[data-job-poll]")).to_be_visible()
            expect(page.locator("#job-title")).to_have_text("Apply in progress")
            shoot(page, tmp_path, "laptop-4-applying", full_page=False)
        expect(page.locator("#job-title")).to_have_text("Apply: done")
        expect(page.locator("[data-job-text]")).to_contain_text("38 change(s) applied")
        expect(page.get_by_test_id("status")).to_have_text("Applied")
        shoot(page, tmp_path, "laptop-5-applied", full_page=False)

        # The files on disk moved.
        assert (case / "Medical Records/Mercy Hospital ER/2024-07-13 ER visit.pdf").is_file()
        assert (case / "INDEX.md").is_file()
        assert not (case / "SCAN_20240714_0001.pdf").exists()
        assert not (case / "Thumbs.db").exists()
        assert service.ws.get(PLAN_ID).status == "applied"

        # Roll back: no conflicts, then the job runs to the end.
        page.get_by_role("link", name="Roll back…").click()
        expect(page.get_by_test_id("no-conflicts")).to_be_visible()
        shoot(page, tmp_path, "laptop-6-rollback", full_page=False)
        page.get_by_role("button", name="Roll back").click()
        expect(page.locator("#job-title")).to_have_text("Rollback: done")
        expect(page.get_by_test_id("status")).to_have_text("Rolled back")
        assert snapshot(case) == before
        assert service.ws.get(PLAN_ID).status == "rolled_back"

        # The audit trail, and the chain verifies.
        expect(page.get_by_test_id("chain")).to_contain_text("The audit chain verifies")
        timeline = page.locator(".timeline")
        for label in ("Submitted", "Checked", "Approved", "Applied", "Rolled back"):
            expect(timeline.locator(".ev-head", has_text=label).first).to_be_visible()
        page.locator("section[aria-labelledby=audit-title]").screenshot(
            path=str(tmp_path / "laptop-7-audit.png")
        )
        shutil.copy(tmp_path / "laptop-7-audit.png", SCREENS / "laptop-7-audit.png")

        # The list files it under "Rolled back".
        page.get_by_role("link", name="Plans", exact=True).click()
        page.get_by_role("link", name=re.compile("Rolled back")).click()
        expect(page.locator("table.plans")).to_contain_text(PLAN_ID)
    finally:
        context.close()


def test_an_agent_sees_no_decision_buttons_and_a_forged_approval_is_refused(
    browser: Browser, service: Service, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        sign_in(page, service, Role.AGENT)
        page.goto(f"{service.url}/ui/plans/{PLAN_ID}")
        expect(page.get_by_test_id("tree-before")).to_be_visible()
        expect(page.get_by_text("Waiting for an approver")).to_be_visible()
        for name in ("Approve", "Reject", "Apply now"):
            expect(page.get_by_role("button", name=name)).to_have_count(0)
        expect(page.get_by_role("link", name="Roll back…")).to_have_count(0)
        shoot(page, tmp_path, "laptop-agent-view", full_page=False)

        # The agent's own session posts the approve form anyway: the role check refuses it.
        status: int = page.evaluate(
            """async (url) => {
                const form = new FormData();
                form.append("comment", "approving my own plan");
                const response = await fetch(url, {method: "POST", body: form,
                                                   credentials: "same-origin"});
                return response.status;
            }""",
            f"{service.url}/ui/plans/{PLAN_ID}/approve",
        )
        assert status == 403
        record = service.ws.get(PLAN_ID)
        assert record.status == "validated"
        assert record.decisions == []
        # And through the page itself (a navigation), the refusal is shown and explained.
        response = page.request.post(
            f"{service.url}/ui/plans/{PLAN_ID}/approve", form={"comment": "again"}
        )
        assert response.status == 403
        assert "may not approve plans" in response.text()
        assert service.ws.get(PLAN_ID).status == "validated"
    finally:
        context.close()


def test_sign_in_refuses_a_bad_token_and_sign_out_ends_the_session(
    browser: Browser, service: Service, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        page.goto(f"{service.url}/ui/plans/{PLAN_ID}")
        expect(page).to_have_url(re.compile(r"/ui/sign-in\?next="))
        page.get_by_label("Access token").fill("alk_nope_nope")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("not accepted")
        shoot(page, tmp_path, "laptop-sign-in-refused", full_page=False)
        page.get_by_label("Access token").fill(service.tokens[Role.APPROVER])
        page.get_by_role("button", name="Sign in").click()
        # Back where the visit started.
        expect(page).to_have_url(re.compile(f"/ui/plans/{PLAN_ID}$"))
        cookie = next(c for c in context.cookies() if c["name"] == "airlock_token")
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/ui/sign-in$"))
        assert not [c for c in context.cookies() if c["name"] == "airlock_token"]
        page.goto(service.url + "/ui/")
        expect(page).to_have_url(re.compile(r"/ui/sign-in"))
    finally:
        context.close()


def test_rollback_conflicts_are_shown_and_force_sets_them_aside(
    browser: Browser, service: Service, tmp_path: Path
) -> None:
    ws = service.ws
    ws.approve(PLAN_ID, actor="jane")
    assert ws.apply(PLAN_ID, actor="jane").success
    case = service.root / CASE
    (case / "INDEX.md").write_text("edited by hand after the apply\n")
    (case / "Photos" / "new photo.jpg").write_bytes(b"\xff\xd8 new")
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        sign_in(page, service, Role.APPROVER)
        page.goto(f"{service.url}/ui/plans/{PLAN_ID}/rollback")
        conflicts = page.get_by_test_id("conflicts")
        expect(conflicts).to_contain_text("INDEX.md")
        expect(conflicts).to_contain_text("was modified since the apply")
        expect(conflicts).to_contain_text("Photos/new photo.jpg")
        expect(page.get_by_text("set aside into this rollback’s trash")).to_be_visible()
        # Without "roll back anyway" it is refused, and nothing moves.
        page.get_by_role("button", name="Roll back").click()
        expect(page.get_by_role("alert")).to_contain_text("cannot be rolled back cleanly")
        assert ws.get(PLAN_ID).status == "applied"
        shoot(page, tmp_path, "laptop-rollback-conflicts", full_page=False)
        page.get_by_role("checkbox").check()
        page.get_by_role("button", name="Roll back").click()
        expect(page.locator("#job-title")).to_have_text("Rollback: done")
        expect(page.get_by_test_id("status")).to_have_text("Rolled back")
        assert (case / "SCAN_20240714_0001.pdf").is_file()
        assert not (case / "Photos").exists()
        events = ws.audit_events(PLAN_ID)
        assert events[-1]["kind"] == "rolled_back"
        assert events[-1]["payload"]["forced"] is True
    finally:
        context.close()


def test_a_narrow_phone_screen_has_no_horizontal_overflow(
    browser: Browser, service: Service, tmp_path: Path
) -> None:
    script = "<script>document.title = 'pwned'</script>"
    record = service.ws.submit(
        {
            "scope": "projects/Rivera-v-Coastal-Freight-2024",
            "description": "Add a deposition checklist with an <b>odd</b> title",
            "author": "paralegal-agent",
            "operations": [
                {"op": "mkdir", "path": "Depositions"},
                {
                    "op": "write",
                    "path": "Depositions/Porter deposition checklist — a rather long name.md",
                    "text": f"# Porter deposition\n\n{script}\n" + "- item\n" * 60,
                },
            ],
        },
        plan_id="rivera-checklist",
    )
    service.ws.validate(record.id)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        sign_in(page, service, Role.APPROVER)
        assert no_horizontal_overflow(page)
        shoot(page, tmp_path, "phone-1-plans", full_page=False)
        page.goto(f"{service.url}/ui/plans/{PLAN_ID}")
        expect(page.get_by_test_id("tree-after")).to_be_visible()
        assert no_horizontal_overflow(page)
        shoot(page, tmp_path, "phone-2-plan", full_page=False)
        page.get_by_test_id("tree-before").scroll_into_view_if_needed()
        shoot(page, tmp_path, "phone-3-trees", full_page=False)

        # Text previews are escaped: the script is shown, never run.
        page.goto(f"{service.url}/ui/plans/rivera-checklist")
        expect(page.locator(".preview-text")).to_contain_text(script)
        expect(page.locator("h1")).to_have_text(
            "Add a deposition checklist with an <b>odd</b> title"
        )
        expect(page.get_by_text("more line(s)")).to_be_visible()
        assert page.title() != "pwned"
        assert no_horizontal_overflow(page)
        shoot(page, tmp_path, "phone-4-additive-plan", full_page=False)
    finally:
        context.close()
