"""The review web page in a real browser: Debian's headless Chromium driven by Playwright, against
the real service (uvicorn in a thread, :mod:`servicekit`) over the sample law-firm workspace.

Screenshots go to the test's tmp_path and a few are copied to /tmp/airlock-screens/ for a person
to look at. Waits use Playwright's own expectations (each with a deadline), never sleeps.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from airlock.demo.sample import DEMO_CASE, sample_reorganisation
from airlock.locks import scope_lock
from airlock.tokens import Role, create_token
from servicekit import Service, running_service
from support import person, snapshot

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
            sample_reorganisation(), plan_id=PLAN_ID, by=person("paralegal-agent")
        )
        running.ws.validate(record.id, by=person("paralegal-agent"))
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
        expect(page.get_by_test_id("chain")).to_contain_text("audit events verify")
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

        # The agent's own session posts the approve form anyway, from the page itself with its
        # own CSRF token (the sign-out form's) and the report's id: the role check refuses it.
        csrf = page.locator("input[name=csrf]").first.get_attribute("value")
        assert csrf
        validation = str(service.ws.get(PLAN_ID).validation_id)
        status: int = page.evaluate(
            """async ([url, csrf, validation]) => {
                const form = new FormData();
                form.append("comment", "approving my own plan");
                form.append("csrf", csrf);
                form.append("validation", validation);
                const response = await fetch(url, {method: "POST", body: form,
                                                   credentials: "same-origin"});
                return response.status;
            }""",
            [f"{service.url}/ui/plans/{PLAN_ID}/approve", csrf, validation],
        )
        assert status == 403
        record = service.ws.get(PLAN_ID)
        assert record.status == "validated"
        assert record.decisions == []
        # And as a plain request with the session (the refusal is shown and explained).
        response = page.request.post(
            f"{service.url}/ui/plans/{PLAN_ID}/approve",
            form={"comment": "again", "csrf": csrf, "validation": validation},
            headers={"Origin": service.url},
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
        cookie = next(c for c in context.cookies() if c["name"] == "airlock_session")
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        # The cookie is a session of the page's own, not the long-lived API token.
        assert cookie["value"] != service.tokens[Role.APPROVER]
        assert service.tokens[Role.APPROVER] not in str(context.cookies())
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/ui/sign-in$"))
        assert not [c for c in context.cookies() if c["name"] == "airlock_session"]
        page.goto(service.url + "/ui/")
        expect(page).to_have_url(re.compile(r"/ui/sign-in"))
        # Sign-out ended the session on the server: a copy of the cookie is dead too.
        context.add_cookies(
            [
                {
                    "name": cookie["name"],
                    "value": cookie["value"],
                    "domain": cookie["domain"],
                    "path": cookie["path"],
                }
            ]
        )
        page.goto(f"{service.url}/ui/plans/{PLAN_ID}")
        expect(page).to_have_url(re.compile(r"/ui/sign-in\?next="))
    finally:
        context.close()


def test_rollback_conflicts_are_shown_and_force_sets_them_aside(
    browser: Browser, service: Service, tmp_path: Path
) -> None:
    ws = service.ws
    ws.approve(PLAN_ID, by=person("jane"))
    assert ws.apply(PLAN_ID, by=person("jane")).success
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


# --- attacks from another origin of the same site ----------------------------------------------


@contextmanager
def attacker_site(pages: dict[str, str]) -> Iterator[str]:
    """A real second web server on another port of 127.0.0.1 (same site as the service, another
    origin) serving ``pages`` (path -> HTML); yields its base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path.split("?")[0])
            if body is None:
                self.send_error(404)
                return
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="attacker-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(30)


def auto_submit(action: str, fields: dict[str, str]) -> str:
    inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in fields.items())
    return (
        f'<!doctype html><form id="f" method="post" action="{action}">{inputs}</form>'
        "<script>document.getElementById('f').submit()</script>"
    )


def applied_plan(service: Service) -> str:
    """An additive plan in another case, applied: something a forged rollback could undo."""
    record = service.ws.submit(
        {
            "scope": "projects/Rivera-v-Coastal-Freight-2024",
            "description": "Add a note",
            "author": "paralegal-agent",
            "operations": [{"op": "write", "path": "note.md", "text": "a note\n"}],
        },
        plan_id="rivera-note",
    )
    service.ws.validate(record.id)
    assert service.ws.apply(record.id, by=person("paralegal-agent")).success
    return record.id


def test_a_page_on_another_port_cannot_act_as_the_signed_in_approver(
    browser: Browser, service: Service, tmp_path: Path
) -> None:
    """F2: the approver is signed in; a page of another origin on the same host (same site, so
    a SameSite=Strict cookie goes along) auto-submits the approve and rollback forms and
    fetch()es the native and seed APIs with credentials: "include". Nothing is approved or
    rolled back."""
    applied = applied_plan(service)
    ws, url = service.ws, service.url
    validation = str(ws.get(PLAN_ID).validation_id)  # the attacker even knows the report's id
    fetches = f"""<!doctype html><script>
    const calls = [
      ["{url}/api/v1/plans/{PLAN_ID}/approve", '{{"comment": "lgtm"}}', "text/plain"],
      ["{url}/api/v1/plans/{applied}/rollback", '{{"force": true}}', "text/plain"],
      ["{url}/plans/{PLAN_ID}/approve?approved_by=jane-approver", "", "text/plain"],
      ["{url}/plans/{applied}/rollback", "", "text/plain"],
      ["{url}/ui/plans/{PLAN_ID}/approve", "comment=lgtm&validation={validation}",
       "application/x-www-form-urlencoded"],
      ["{url}/ui/plans/{applied}/rollback", "force=true", "application/x-www-form-urlencoded"],
    ];
    Promise.allSettled(calls.map(([target, body, type]) => fetch(target, {{
      method: "POST", body: body, credentials: "include", headers: {{"Content-Type": type}}
    }}))).then(() => {{ document.title = "done"; }});
    </script>"""
    pages = {
        "/approve.html": auto_submit(
            f"{url}/ui/plans/{PLAN_ID}/approve",
            {"comment": "lgtm", "validation": validation, "csrf": "guessed"},
        ),
        "/rollback.html": auto_submit(f"{url}/ui/plans/{applied}/rollback", {"force": "true"}),
        "/fetches.html": fetches,
    }
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        sign_in(page, service, Role.APPROVER)
        with attacker_site(pages) as evil:
            assert evil.split(":")[-1] != url.split(":")[-1]  # same host, another port
            for name in ("/approve.html", "/rollback.html"):
                with page.expect_response(
                    lambda r: r.url.startswith(url) and r.request.method == "POST"
                ) as answered:
                    page.goto(evil + name)
                assert answered.value.status == 403, answered.value.status_text
                assert "another origin" in answered.value.text()
            page.goto(evil + "/fetches.html")
            expect(page).to_have_title("done")
        # Nothing was approved or rolled back, and the audit log has no such event.
        record = ws.get(PLAN_ID)
        assert record.status == "validated" and record.decisions == []
        assert ws.get(applied).status == "applied"
        assert (service.root / "projects/Rivera-v-Coastal-Freight-2024/note.md").is_file()
        kinds = {e["kind"] for e in ws.audit_events(PLAN_ID) + ws.audit_events(applied)}
        assert not kinds & {"approved", "rejected", "rolled_back"}, kinds
        # The approver is still signed in and can still approve from the page itself.
        page.goto(f"{url}/ui/plans/{PLAN_ID}")
        page.get_by_role("button", name="Approve").click()
        expect(page.get_by_test_id("status")).to_have_text("Approved")
    finally:
        context.close()


def test_another_origin_cannot_sign_the_browser_in_as_someone_else(
    browser: Browser, service: Service
) -> None:
    """F2 (login CSRF): a page of another origin posts the sign-in form with the attacker's own
    token, so that the victim would work (and type comments) as the attacker. Refused."""
    _id, mallory = create_token(service.ws, "mallory", Role.AGENT)
    page_html = auto_submit(f"{service.url}/ui/sign-in", {"token": mallory, "next": "/ui/"})
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        with attacker_site({"/login.html": page_html}) as evil:
            with page.expect_response(
                lambda r: r.url.startswith(service.url) and r.request.method == "POST"
            ) as answered:
                page.goto(evil + "/login.html")
            assert answered.value.status == 403
            assert not [c for c in context.cookies() if c["name"].endswith("airlock_session")]
            page.goto(service.url + "/ui/")
            expect(page).to_have_url(re.compile(r"/ui/sign-in\?next="))
            # Signed in as herself, the approver stays herself.
            sign_in(page, service, Role.APPROVER)
            with page.expect_response(
                lambda r: r.url.startswith(service.url) and r.request.method == "POST"
            ) as answered:
                page.goto(evil + "/login.html")
            assert answered.value.status == 403
        page.goto(service.url + "/ui/")
        expect(page.locator(".me-name")).to_contain_text("jane-approver")
    finally:
        context.close()


def test_a_plan_checked_again_after_the_page_loaded_is_not_approved_unseen(
    browser: Browser, service: Service, tmp_path: Path
) -> None:
    """F3: the approver loads the plan; the agent changes a file the plan deletes and validates
    again; the approver's click must not approve the new report she never saw."""
    ws = service.ws
    shown = ws.get(PLAN_ID).validation_id
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        sign_in(page, service, Role.APPROVER)
        page.goto(f"{service.url}/ui/plans/{PLAN_ID}")
        expect(page.get_by_role("button", name="Approve")).to_be_visible()

        (service.root / CASE / "Thumbs.db").write_bytes(b"not scanner junk any more\n" * 1000)
        newer = ws.validate(PLAN_ID, by=person("paralegal-agent"))
        assert newer.status == "validated" and newer.validation_id != shown

        page.get_by_label("Comment").fill("Checked the deletions: scanner junk.")
        page.get_by_role("button", name="Approve").click()
        expect(page.get_by_role("alert")).to_contain_text("the plan changed since you looked")
        shoot(page, tmp_path, "laptop-changed-since-you-looked", full_page=False)
        record = ws.get(PLAN_ID)
        assert record.status == "validated" and record.decisions == []
        assert "approved" not in {e["kind"] for e in ws.audit_events(PLAN_ID)}

        # Reloaded, she sees the new report and may approve that one.
        page.goto(f"{service.url}/ui/plans/{PLAN_ID}")
        page.get_by_role("button", name="Approve").click()
        expect(page.get_by_test_id("status")).to_have_text("Approved")
        approved = [e for e in ws.audit_events(PLAN_ID) if e["kind"] == "approved"]
        assert [e["payload"]["validation"] for e in approved] == [newer.validation_id]
    finally:
        context.close()
