"""The plan's review page through the real service: look-alike names are shown escaped with their
warning beside them (F17), and a plan of thousands of changes is summarised and paged (F18)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airlock.service import plan_view
from airlock.tokens import Role
from servicekit import DEMO_CASE, Service, running_service, signed_in

SCOPE = f"projects/{DEMO_CASE}"
LOOK_ALIKE = "invоice.pdf"  # the "о" is Cyrillic (U+043E)
ESCAPED = "inv\\u043eice.pdf"
RLO = "report\u202efdp.exe"  # reads as "reportexe.pdf"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("page") / "ws") as running:
        yield running


def submitted(service: Service, plan_id: str, operations: list[dict[str, Any]]) -> None:
    agent = service.client(Role.AGENT)
    body = {"scope": SCOPE, "description": "t", "author": "agent", "operations": operations}
    response = agent.post("/api/v1/plans", params={"plan_id": plan_id}, json=body)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "validated", response.json()


def page(client: httpx.Client, plan_id: str, number: int | None = None) -> str:
    query = "" if number is None else f"?page={number}"
    response = client.get(f"/ui/plans/{plan_id}{query}")
    assert response.status_code == 200, response.text
    return html.unescape(response.text)


def test_look_alike_and_invisible_names_are_shown_escaped_with_their_warning(
    service: Service,
) -> None:
    some_file = next(
        p.name for p in sorted((service.root / SCOPE).iterdir()) if p.is_file() and p.suffix
    )
    submitted(
        service,
        "look-alikes",
        [
            {"op": "mkdir", "path": "Bills"},
            {"op": "move", "source": some_file, "destination": f"Bills/{LOOK_ALIKE}"},
            {"op": "write", "path": RLO, "text": "x"},
        ],
    )
    text = page(signed_in(service), "look-alikes")

    assert LOOK_ALIKE not in text and RLO not in text  # never the misleading forms
    assert text.count(ESCAPED) >= 4  # the warning, the change, and both trees
    assert "report\\u202efdp.exe" in text
    row = text[text.index('id="changes-title"') :]
    assert 'data-warning="mixed-script"' in row  # beside the change, not only in the list
    assert 'data-warning="invisible-characters"' in row
    assert re.search(r'class="misleading" title="Shown escaped: look-alike letters', text)


def test_a_plan_too_large_to_draw_is_summarised_and_paged(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real limits are 2,000 changes for the trees and 500 a page; smaller ones keep the test
    # quick (the service runs in this process). bench/bench_large_plans.py measures the real ones.
    monkeypatch.setattr(plan_view, "TREE_LIMIT", 40)
    monkeypatch.setattr(plan_view, "CHANGES_PER_PAGE", 20)
    monkeypatch.setattr(plan_view, "ISSUES_LISTED", 3)
    operations: list[dict[str, Any]] = [{"op": "mkdir", "path": "Bulk"}]
    operations += [{"op": "mkdir", "path": f"Bulk/f-{n:02d}"} for n in range(40)]
    operations += [
        {"op": "write", "path": f"Bulk/f-{n:02d}/{LOOK_ALIKE}", "text": "x"} for n in range(5)
    ]
    submitted(service, "bulk", operations)  # 46 changes: 5 writes (warned), then 41 mkdirs
    client = signed_in(service)

    first = page(client, "bulk")
    assert 'data-testid="folders"' in first and 'data-testid="tree-before"' not in first
    assert "Where the changes land" in first and "Bulk/f-00/" in first
    assert "Changes 1–20 of 46 · page 1 of 3" in first
    assert 'rel="next" href="/ui/plans/bulk?page=2#changes-title"' in first
    assert first.count('class="ch ch-') == 20
    assert first.count('data-warning="mixed-script"') == 5  # the writes come first: on page 1
    assert "2 more “mixed-script”" in first  # 3 listed, the other 2 counted
    assert "Bulk/f-04/" + ESCAPED in first

    last = page(client, "bulk", 3)
    assert "Changes 41–46 of 46 · page 3 of 3" in last
    assert last.count('class="ch ch-') == 6 and 'rel="next"' not in last
    assert "data-warning" not in last[last.index('id="changes-title"') :]
    assert page(client, "bulk", 99).count('class="ch ch-') == 6  # past the end: the last page


def test_a_small_plan_still_draws_its_trees_and_lists_every_change(service: Service) -> None:
    submitted(service, "small", [{"op": "mkdir", "path": f"Small-{n}"} for n in range(3)])
    text = page(signed_in(service), "small")
    assert 'data-testid="tree-before"' in text and 'data-testid="folders"' not in text
    assert text.count('class="ch ch-') == 3 and 'data-testid="pager"' not in text


def test_page_numbers_are_read_leniently_and_clamped() -> None:
    assert plan_view.page_number("3") == 3
    assert plan_view.page_number("-1") == plan_view.page_number("x") == 1
    pager = plan_view.pager(total=1001, number=3, per_page=500)
    assert (pager.first, pager.last, pager.pages, pager.links) == (1001, 1001, 3, [1, 2, 3])
    assert plan_view.pager(total=0, number=1, per_page=500).first == 0


def test_each_change_shows_why_and_an_only_copy_is_said(service: Service) -> None:
    (service.root / SCOPE / "incident report.pdf").write_bytes(b"%PDF-1.4 the only report")
    submitted(
        service,
        "reasons",
        [
            {"op": "mkdir", "path": "Filed", "reason": "a folder for <filed> papers"},
            {"op": "delete", "path": "incident report.pdf", "reason": "a duplicate"},
        ],
    )
    response = signed_in(service).get("/ui/plans/reasons")
    assert response.status_code == 200
    assert "a folder for &lt;filed&gt; papers" in response.text  # escaped, never markup
    text = html.unescape(response.text)
    assert 'data-reason="1"><strong>Why:</strong> a folder for <filed> papers' in text
    assert 'data-reason="2"><strong>Why:</strong> a duplicate' in text
    assert 'data-warning="only-copy"' in text
    assert "is the only copy of these bytes in the case" in text
    assert "claimed duplicate, no identical copy found" in text


def test_the_kept_aside_page_lists_and_restores_as_a_plan(service: Service) -> None:
    (service.root / SCOPE / "to be removed.txt").write_text("keep me\n")
    submitted(service, "remove-one", [{"op": "delete", "path": "to be removed.txt"}])
    approver = signed_in(service)
    page(approver, "remove-one")
    approved = service.client(Role.APPROVER).post("/api/v1/plans/remove-one/approve", json={})
    assert approved.status_code == 200, approved.text
    assert service.ws.apply("remove-one").success  # (as the local operator, in process)

    listing = approver.get("/ui/trash")
    assert listing.status_code == 200
    text = html.unescape(listing.text)
    assert f"{SCOPE}/to be removed.txt" in text and "remove-one" in text
    item = re.search(r'name="item" value="([^"]+)"', listing.text)
    assert item is not None
    csrf = re.search(r'name="csrf" value="([^"]+)"', listing.text)
    assert csrf is not None
    # a forged form (no CSRF token, or a foreign origin) restores nothing
    forged = approver.post(
        "/ui/trash/restore", data={"item": item.group(1)}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert forged.status_code == 403, forged.text
    restored = approver.post(
        "/ui/trash/restore",
        data={"item": item.group(1), "csrf": csrf.group(1)},
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    assert restored.status_code == 303, restored.text
    plan_page = approver.get(restored.headers["location"])
    assert plan_page.status_code == 200
    assert "Restore " in html.unescape(plan_page.text) and "to be removed.txt" in plan_page.text
    assert not (service.root / SCOPE / "to be removed.txt").exists()  # a plan, not yet applied
    missing = approver.post(
        "/ui/trash/restore",
        data={"item": "txn-nope/0", "csrf": csrf.group(1)},
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    assert missing.status_code == 404 and "nothing kept aside" in missing.text
