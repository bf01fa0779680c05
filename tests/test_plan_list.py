"""The review page's list of plans at scale (#12): filtered by case, author and date, searched
(description, path, plan id), in tabs and pages, in a constant number of SQL statements whatever
the number of plans. Through the real service, as tests/test_review_page.py does."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, update

from airlock.db import PlanRow, ValidationRow
from airlock.lifecycle import Status
from airlock.permissions import Principal
from airlock.plan_lists import TAB_KEYS, PlanFilter, tab_of
from airlock.service import review
from airlock.tokens import Role
from airlock.workspace import Workspace
from servicekit import DEMO_CASE, Service, running_service, signed_in

SCOPE = f"projects/{DEMO_CASE}"
ALICE = Principal(name="alice-agent", role=Role.AGENT, via="os")
BOB = Principal(name="bob-agent", role=Role.AGENT, via="os")
OLD_DAY = dt.datetime(2024, 7, 13, 23, 30, tzinfo=dt.UTC)
"""When the plan "old-one" says it was submitted (set in the database by the fixture)."""


def submit(
    service: Service,
    plan_id: str,
    by: Principal,
    *,
    scope: str = SCOPE,
    description: str = "",
    path: str | None = None,
    validate: bool = False,
    require_approval: bool = False,
) -> None:
    plan = {
        "scope": scope,
        "description": description,
        "operations": [{"op": "mkdir", "path": path or f"new-{plan_id}"}],
        "require_approval": require_approval,
    }
    service.ws.submit(plan, plan_id=plan_id, by=by)
    if validate:
        assert service.ws.validate(plan_id).status == "validated"


def make_plans(service: Service, count: int, start: int = 0) -> None:
    """``count`` plans of "bulk-agent"; every other one checked (so on "ready")."""
    agent = Principal(name="bulk-agent", role=Role.AGENT, via="os")
    for n in range(start, start + count):
        submit(service, f"bulk-{n:04d}", agent, description=f"bulk plan {n}", validate=n % 2 == 0)


def get(client: httpx.Client, **params: str) -> str:
    response = client.get("/ui/", params=params)
    assert response.status_code == 200, response.text
    return response.text


def listed(text: str) -> list[str]:
    """The plan ids a list page shows, in order."""
    return re.findall(r'<div class="small muted mono">([^<]*)</div>', text)


def tab_counts(text: str) -> dict[str, int]:
    found = re.findall(
        r'href="[^"]*\?tab=(\w+)[^"]*"[^>]*>\s*[^<]*<span class="count[^"]*">(\d+)', text
    )
    return {key: int(count) for key, count in found}


def tab_links(text: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'<a href="([^"]*)" class="tab', text)]


def another_case(service: Service) -> str:
    """A case of the sample workspace other than :data:`SCOPE`."""
    cases = sorted(p.name for p in (service.root / "projects").iterdir() if p.is_dir())
    return f"projects/{next(name for name in cases if name != DEMO_CASE)}"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("plan-list") / "ws") as running:
        other_case = another_case(running)
        submit(running, "medical-1", ALICE, description="Médical records, sorted")
        submit(
            running,
            "paths-1",
            BOB,
            scope=other_case,
            description="Tidy up",
            path="Deep/Odd_Folder%Name",
            validate=False,
        )
        submit(running, "xyz-77-id", ALICE, description="Nothing to see", validate=True)
        submit(
            running,
            "needs-1",
            BOB,
            description="Asks for a person",
            validate=True,
            require_approval=True,
        )
        submit(running, "old-one", ALICE, description="From last year")
        with running.ws.store.write() as session:
            session.execute(
                update(PlanRow).where(PlanRow.id == "old-one").values(created_at=OLD_DAY)
            )
        yield running


def test_the_search_finds_descriptions_paths_ids_and_non_ascii_whatever_the_case(
    service: Service,
) -> None:
    client = signed_in(service)
    assert listed(get(client, q="médical")) == ["medical-1"]
    assert listed(get(client, q="MÉDICAL RECORDS")) == ["medical-1"]  # É folds to é
    assert listed(get(client, q="odd_folder%n")) == ["paths-1"]  # a path in the plan
    assert listed(get(client, q="_folder%")) == ["paths-1"]
    assert listed(get(client, q="%")) == ["paths-1"]  # % and _ are the user's, not wildcards
    assert listed(get(client, tab="ready", q="XYZ-77")) == ["xyz-77-id"]  # the plan id
    assert listed(get(client, q="no such thing anywhere")) == []


def test_case_author_and_dates_filter_and_combine(service: Service) -> None:
    client = signed_in(service)
    other_case = another_case(service)
    assert listed(get(client, case=other_case)) == ["paths-1"]
    assert set(listed(get(client, author="alice-agent"))) == {"medical-1", "old-one"}
    assert listed(get(client, author="bob-agent", case=SCOPE)) == ["needs-1"]
    # Days are in UTC and "to" is included: 23:30 on the 13th is on the 13th.
    assert listed(get(client, **{"from": "2024-07-13", "to": "2024-07-13"})) == ["old-one"]
    assert "old-one" not in listed(get(client, **{"from": "2024-07-14"}))
    assert "old-one" not in listed(get(client, to="2024-07-12"))
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert set(listed(get(client, author="alice-agent", to=today))) == {"medical-1", "old-one"}
    assert listed(get(client, author="alice-agent", q="records", to="2024-12-31")) == []
    # The choices are every case and author that has plans, once each.
    text = get(client)
    assert text.count(f'<option value="{other_case}"') == 1
    assert text.count('<option value="alice-agent"') == 1
    assert '<option value="bob-agent" selected>' in get(client, author="bob-agent")


def test_the_tabs_count_what_the_other_filters_leave_and_keep_them(service: Service) -> None:
    client = signed_in(service)
    counts = tab_counts(get(client, author="bob-agent"))
    assert counts == {
        "review": 2,
        "ready": 0,
        "applied": 0,
        "failed": 0,
        "rolled_back": 0,
        "rejected": 0,
    }
    text = get(client, tab="ready", author="alice-agent")
    assert tab_counts(text)["ready"] == 1 and tab_counts(text)["review"] == 2
    assert listed(text) == ["xyz-77-id"]
    for link in tab_links(text):
        assert "author=alice-agent" in link
    assert "needs approval" in get(client, author="bob-agent")


def test_an_empty_result_says_what_filtered_it_out_and_offers_to_clear(service: Service) -> None:
    client = signed_in(service)
    text = html.unescape(get(client, tab="rejected", q="records", author="alice-agent"))
    assert "No plans on this tab match the search “records”, author alice-agent." in text
    assert 'href="/ui/?tab=rejected">Clear filters</a>' in text
    unknown_tab = get(client, q="no such thing anywhere", tab="x")  # the first tab, then
    assert 'class="tab is-current" aria-current="page">\n    Needs review' in unknown_tab
    unfiltered = get(client, tab="rejected")
    assert "No plans here." in unfiltered and "Clear filters" not in unfiltered


def test_what_the_user_typed_is_escaped_in_the_form_and_the_links(service: Service) -> None:
    client = signed_in(service)
    text = get(client, q='<b>"x"&y')
    assert "<b>" not in text
    assert 'value="&lt;b&gt;&#34;x&#34;&amp;y"' in text
    assert any("q=%3Cb%3E%22x%22%26y" in link for link in tab_links(text))


@pytest.mark.parametrize(
    "params",
    [
        {"page": "abc"},
        {"page": "-3"},
        {"page": "99999999999999999999"},
        {"from": "2024-13-45"},
        {"to": "yesterday"},
        {"from": "2024-02-30", "to": "20240101"},
        {"q": "x" * 500},
        {"tab": "nope", "case": "%", "author": "\u202e"},
    ],
)
def test_bad_filter_values_are_not_an_error(service: Service, params: dict[str, str]) -> None:
    text = html.unescape(get(signed_in(service), **params))
    if "from" in params or "to" in params:
        assert "is not a date (write a day as YYYY-MM-DD, e.g. 2024-07-13)" in text
        assert 'name="from" value=""' in text and 'name="to" value=""' in text
    if "q" in params:
        assert "The search was cut to its first 200 characters." in text
        assert f'value="{"x" * 200}"' in text


def test_pages_of_plans_keep_the_filters(tmp_path: Path) -> None:
    with running_service(tmp_path / "ws") as service:
        make_plans(service, 130)  # 65 on "review", 65 on "ready"
        submit(service, "someone-else", ALICE, description="bulk plan too")
        client = signed_in(service)
        first = get(client, author="bulk-agent", q="bulk plan")
        assert tab_counts(first)["review"] == 65
        assert len(listed(first)) == 50
        assert listed(first)[0] == "bulk-0129"  # newest first
        links = [html.unescape(h) for h in re.findall(r'<a [^>]*href="([^"]*page=\d+)"', first)]
        assert links and all(
            link.startswith("/ui/?tab=review&q=bulk+plan&author=bulk-agent&page=") for link in links
        )
        second = get(client, author="bulk-agent", q="bulk plan", page="2")
        assert len(listed(second)) == 15
        assert set(listed(first)).isdisjoint(listed(second))
        assert "Plans 51–65 of 65 · page 2 of 2" in second
        assert listed(get(client, author="bulk-agent", q="bulk plan", page="7")) == listed(second)
        ready = get(client, tab="ready", author="bulk-agent", page="2")
        assert len(listed(ready)) == 15 and all(int(i[-4:]) % 2 == 0 for i in listed(ready))


def statements(service: Service, client: httpx.Client, url: str) -> int:
    """How many SQL statements the service executes to answer ``url``."""
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    engine = service.ws.store.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        response = client.get(url)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert response.status_code == 200, response.text
    return len(seen)


def test_the_list_takes_the_same_few_queries_for_10_and_for_120_plans(tmp_path: Path) -> None:
    urls = ["/ui/?tab=review", "/ui/?tab=ready", "/ui/?tab=ready&q=plan&author=bulk-agent&page=2"]
    with running_service(tmp_path / "ws") as service:
        client = signed_in(service)
        make_plans(service, 10)
        few = [statements(service, client, url) for url in urls]
        make_plans(service, 110, start=10)
        many = [statements(service, client, url) for url in urls]
    assert few == many  # before #12: review 50 -> 545, ready 25 -> 305
    assert max(many) <= 8  # the session, then counts, the page, the cases and the authors


def test_every_status_is_on_the_same_tab_in_sql_as_tab_of_says(tmp_path: Path) -> None:
    """The store's SQL and :func:`tab_of` agree for every status, with and without approval."""
    root = tmp_path / "ws"
    (root / "projects" / "case").mkdir(parents=True)
    with Workspace.init(root) as ws:
        ws.submit(
            {
                "scope": "projects/case",
                "operations": [{"op": "mkdir", "path": "a"}],
                "require_approval": True,
            },
            plan_id="needs",
            by=ALICE,
        )
        ws.submit(
            {"scope": "projects/case", "operations": [{"op": "mkdir", "path": "b"}]},
            plan_id="free",
            by=ALICE,
        )
        ws.submit(
            {"scope": "projects/case", "operations": [{"op": "mkdir", "path": "c"}]},
            plan_id="unchecked",
            by=ALICE,
        )
        ws.validate("needs")
        ws.validate("free")
        with ws.store.read() as session:
            needs = {
                row.plan_id: bool(row.report["needs_approval"])
                for row in session.query(ValidationRow)
            }
        assert needs == {"needs": True, "free": False}
        for status in Status:
            with ws.store.write() as session:
                session.execute(update(PlanRow).values(status=status.value))
            expected = {key: 0 for key in TAB_KEYS}
            for plan_id in ("needs", "free", "unchecked"):
                expected[tab_of(status, needs.get(plan_id, False))] += 1
            page = ws.plan_page("review")
            assert page.tab_counts == expected, status
            for key in TAB_KEYS:
                on_tab = ws.plan_page(key).plans
                assert {p.id for p in on_tab if p.tab == key} == {p.id for p in on_tab}, status
                assert len(on_tab) == expected[key]
    assert review.tab_of is tab_of  # the page's tab is the core's


def test_one_page_from_the_core_without_parsing_any_plan(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "projects" / "case").mkdir(parents=True)
    with Workspace.init(root) as ws:
        for n in range(7):
            ops = [{"op": "mkdir", "path": f"d{n}-{i}"} for i in range(n + 1)]
            ws.submit({"scope": "projects/case", "operations": ops}, plan_id=f"p{n}", by=BOB)
        ws.validate("p3")
        ws.store._parsed.clear()  # what the list parsed, it would keep here
        page = ws.plan_page("review", PlanFilter(author="bob-agent"), page=2, per_page=3)
        assert ws.store._parsed == {}
    assert (page.number, page.total, [p.id for p in page.plans]) == (2, 6, ["p2", "p1", "p0"])
    assert [p.operations for p in page.plans] == [3, 2, 1]
    assert page.tab_counts["ready"] == 1 and page.authors == ["bob-agent"]
    assert page.scopes == ["projects/case"]
    assert page.plans[0].created_at.tzinfo is not None
    assert PlanFilter(text="  " + "y" * 300).text == "y" * 200
