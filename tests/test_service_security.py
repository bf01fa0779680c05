"""The service's red-team findings, tried the way an attacker (or a confused client) would, over
HTTP against the real server. The browser half of F2 and F3 is in ``test_web_browser.py``.

* F2 — forged changes from another origin of the same site: the Host allow-list (DNS
  rebinding), Origin / Sec-Fetch-Site on every state-changing request, the APIs refusing the
  page's cookie, the forms' CSRF token, login CSRF, and the page's own revocable, expiring
  sessions (the cookie is no longer the API token);
* F3 — a decision names the validation it was made on; a newer one is refused (core, native
  API, seed API, web form, CLI);
* F8 — /docs and /redoc: off by default; when on, only pinned integrity-checked files; every
  page's security headers, and no page referencing another origin;
* F19 — the OpenAPI document: the bearer scheme, the ids' patterns; OPTIONS and 405 answers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from airlock.agents import wire
from airlock.db import WebSessionRow
from airlock.errors import PlanFormatError, PlanStateError
from airlock.plan import PLAN_ID_PATTERN, check_plan_id
from airlock.service import docs
from airlock.service.jobs import JOB_ID_PATTERN
from airlock.service.settings import Settings, load_settings
from airlock.sessions import end_session, find_session, start_session
from airlock.tokens import Principal, Role, create_token, revoke_token
from servicekit import (
    TOKEN_NAMES,
    Service,
    child_env,
    free_port,
    json_of,
    poll_until,
    running_service,
    serve_command,
)
from support import person

AGENT = TOKEN_NAMES[Role.AGENT]
API = "/api/v1"
_names = itertools.count()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("security") / "ws") as running:
        yield running


def port_of(service: Service) -> int:
    return int(service.url.rsplit(":", 1)[1])


def new_case(service: Service) -> str:
    name = f"Sec-{next(_names):03}"
    folder = service.root / "projects" / name
    folder.mkdir()
    (folder / "a.txt").write_text("alpha\n")
    (folder / "b.txt").write_text("bravo\n")
    return f"projects/{name}"


def needs_approval(service: Service) -> str:
    """A validated plan that deletes a file: it needs an approver."""
    record = service.ws.submit(
        {
            "scope": new_case(service),
            "description": "delete b",
            "author": AGENT,
            "operations": [{"op": "delete", "path": "b.txt"}],
        },
        by=person(AGENT, Role.AGENT),
    )
    record = service.ws.validate(record.id, by=person(AGENT, Role.AGENT))
    assert record.status == "validated" and record.validation is not None
    assert record.validation.needs_approval
    return record.id


def applied(service: Service) -> str:
    """An applied additive plan: one a forged rollback could undo."""
    record = service.ws.submit(
        {
            "scope": new_case(service),
            "description": "add c",
            "author": AGENT,
            "operations": [{"op": "write", "path": "c.txt", "text": "charlie\n"}],
        },
        by=person(AGENT, Role.AGENT),
    )
    service.ws.validate(record.id, by=person(AGENT, Role.AGENT))
    assert service.ws.apply(record.id, by=person(AGENT, Role.AGENT)).success
    return record.id


def check_error(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body: dict[str, Any] = json_of(response)
    assert set(body) == {"error", "message", "detail", "hint", "details"}, body
    assert body["detail"] == body["message"], body
    for word in words:
        assert word in body["detail"] + " " + body["hint"], (word, body)
    return body


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def sign_in(
    service: Service, role: Role = Role.APPROVER, *, token: str | None = None
) -> tuple[httpx.Client, str]:
    """A client signed in to the review page as a browser would be: (client, the CSRF token)."""
    client = httpx.Client(base_url=service.url, headers={"Origin": service.url}, timeout=60)
    service._clients.append(client)  # closed with the service's own clients
    response = client.post(
        "/ui/sign-in", data={"token": token or service.tokens[role], "next": "/ui/"}
    )
    assert response.status_code == 303, response.text
    return client, csrf_of(client.get("/ui/").text)


def untouched(service: Service, plan_id: str, status: str) -> None:
    record = service.ws.get(plan_id)
    assert record.status == status, record.status
    kinds = {e["kind"] for e in service.ws.audit_events(plan_id)}
    assert not kinds & {"approved", "rejected", "rolled_back"}, kinds


# --- F2 (e): the Host allow-list ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health", "/openapi.json", "/ui/sign-in", f"{API}/plans"])
def test_a_rebound_host_name_is_refused_and_the_error_names_the_setting(
    service: Service, path: str
) -> None:
    """DNS rebinding: evil.example resolves to 127.0.0.1, so its page reaches the service, with
    its own name in Host."""
    response = httpx.get(
        service.url + path,
        headers={"Host": f"evil.example:{port_of(service)}", **service.client(Role.AGENT).headers},
    )
    body = check_error(response, 400, "evil.example", "allowed_hosts", "--allowed-host")
    assert body["error"] == "InputError"


def test_a_rebound_sign_in_is_refused(service: Service) -> None:
    host = f"evil.example:{port_of(service)}"
    response = httpx.post(
        service.url + "/ui/sign-in",
        data={"token": service.tokens[Role.APPROVER]},
        headers={"Host": host, "Origin": f"http://{host}"},
    )
    check_error(response, 400, "evil.example")
    assert "set-cookie" not in response.headers


def test_loopback_names_with_the_port_are_answered_and_nothing_else(service: Service) -> None:
    port = port_of(service)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"LOCALHOST:{port}"):
        assert httpx.get(service.url + "/health", headers={"Host": host}).status_code == 200, host
    for host in (
        "localhost",
        f"127.0.0.1:{port + 1}",
        f"localhost.:{port}",
        "",
        f"127.0.0.2:{port}",
    ):
        check_error(
            httpx.get(service.url + "/health", headers={"Host": host}), 400, "allowed_hosts"
        )


def test_allowed_hosts_adds_names(tmp_path: Path) -> None:
    with running_service(
        tmp_path / "ws", Settings(allowed_hosts=("airlock.firm.example", "[fd00::1]:9000"))
    ) as named:
        for host in ("airlock.firm.example", "airlock.firm.example:443", "[fd00::1]:9000"):
            assert httpx.get(named.url + "/health", headers={"Host": host}).status_code == 200
        for host in ("airlock.firm.example.evil.example", "firm.example", "[fd00::1]:9001"):
            check_error(httpx.get(named.url + "/health", headers={"Host": host}), 400)


def test_allowed_hosts_from_the_environment_and_the_file(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"AIRLOCK_ALLOWED_HOSTS": "a.example, b.example:8443 ::1", "AIRLOCK_DOCS": "yes"}
    )
    assert settings.allowed_hosts == ("a.example", "b.example:8443", "::1")
    assert settings.docs is True
    config = tmp_path / "airlock.toml"
    config.write_text('allowed_hosts = ["review.firm.example"]\nsession_hours = 8\ndocs = false\n')
    settings = load_settings(config, environ={})
    assert settings.allowed_hosts == ("review.firm.example",)
    assert (settings.session_hours, settings.docs) == (8.0, False)
    with pytest.raises(Exception, match="out of range"):
        load_settings(environ={"AIRLOCK_SESSION_HOURS": "0"})
    with pytest.raises(Exception, match="not true or false"):
        load_settings(environ={"AIRLOCK_DOCS": "maybe"})


def test_serve_allowed_host_option(tmp_path: Path) -> None:
    """`airlock serve --allowed-host NAME` (repeatable) is what the error's hint says."""
    root = tmp_path / "ws"
    from servicekit import make_workspace

    make_workspace(root).close()
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    command = serve_command(
        root, "--port", str(port), "--allowed-host", "review.firm.test", "--allowed-host", "b.test"
    )
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=child_env())
    url = f"http://127.0.0.1:{port}"

    def up() -> bool | None:
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        try:
            return httpx.get(url + "/health", timeout=5).status_code == 200 or None
        except httpx.TransportError:
            return None

    try:
        poll_until(up, deadline=30, what="airlock serve")
        for host in ("review.firm.test", "b.test:1234"):
            assert httpx.get(url + "/health", headers={"Host": host}).status_code == 200
        check_error(httpx.get(url + "/health", headers={"Host": "c.test"}), 400, "c.test")
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


# --- F2 (b), (c): other origins, and the APIs never take the cookie --------------------------


ATTACKS = {
    "another port": {"Origin": "http://127.0.0.1:1"},
    "sibling subdomain": {"Origin": "http://evil.localhost"},
    "same-site fetch": {"Sec-Fetch-Site": "same-site"},
    "cross-site": {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
    "opaque origin": {"Origin": "null"},
    "other scheme": {"Origin": "https://127.0.0.1"},
}


def _change_routes(plan_id: str, applied_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{API}/plans/{plan_id}/approve", {"json": {"comment": "lgtm"}}),
        (f"{API}/plans/{applied_id}/rollback", {"json": {"force": True}}),
        (f"/plans/{plan_id}/approve", {"params": {"approved_by": "jane"}}),
        (f"/plans/{applied_id}/rollback", {}),
    ]


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_changes_from_another_origin_are_refused_even_with_a_token(
    service: Service, attack: str
) -> None:
    """Whatever authenticates the request (here even a real approver's token), a browser that
    says it comes from another origin changes nothing."""
    plan_id, applied_id = needs_approval(service), applied(service)
    approver = service.client(Role.APPROVER)
    for path, extra in _change_routes(plan_id, applied_id):
        response = approver.post(path, headers={**ATTACKS[attack]}, **extra)
        check_error(response, 403, "another origin")
    untouched(service, plan_id, "validated")
    untouched(service, applied_id, "applied")


def test_the_session_cookie_does_not_authenticate_the_apis(service: Service) -> None:
    """A same-origin request that carries only the page's cookie (what a forged form or fetch
    with credentials would carry) is not signed in as far as the APIs are concerned."""
    plan_id, applied_id = needs_approval(service), applied(service)
    client, _csrf = sign_in(service)
    assert client.get("/ui/").status_code == 200  # signed in on the page
    for path, extra in _change_routes(plan_id, applied_id):
        check_error(client.post(path, **extra), 401, "no token was sent")
    check_error(client.get(f"{API}/plans"), 401)
    untouched(service, plan_id, "validated")
    untouched(service, applied_id, "applied")
    # The page follows its jobs through a route of its own, which wants the session.
    check_error(client.get("/ui/jobs/job_0123456789ab"), 404, "no job")
    check_error(httpx.get(service.url + "/ui/jobs/job_0123456789ab"), 401, "not signed in")


def test_same_origin_and_headerless_token_requests_still_work(service: Service) -> None:
    approver = service.client(Role.APPROVER)
    own = {"Origin": service.url}
    first, second = needs_approval(service), needs_approval(service)
    response = approver.post(f"{API}/plans/{first}/approve", headers=own, json={})
    assert response.status_code == 200, response.text
    response = approver.post(f"/plans/{second}/approve", headers={"Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 200, response.text
    third = needs_approval(service)  # a program: no Origin, no Sec-Fetch-Site, a bearer token
    assert approver.post(f"/plans/{third}/approve").json()["status"] == "approved"


def test_refusals_are_logged(service: Service, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="airlock.service"):
        service.client(Role.AGENT).post(f"{API}/plans/x/validate", headers=ATTACKS["cross-site"])
    fields = [getattr(r, "fields", {}) for r in caplog.records if r.getMessage() == "refused"]
    assert any(f.get("reason") == "Sec-Fetch-Site: cross-site" for f in fields), fields


# --- F2 (a), (d): the forms' CSRF token and login CSRF -----------------------------------------


def _form_posts(plan_id: str, applied_id: str, validation: int) -> list[tuple[str, dict[str, str]]]:
    return [
        (f"/ui/plans/{plan_id}/approve", {"comment": "ok", "validation": str(validation)}),
        (f"/ui/plans/{plan_id}/reject", {"comment": "no", "validation": str(validation)}),
        (f"/ui/plans/{plan_id}/validate", {}),
        (f"/ui/plans/{applied_id}/rollback", {"force": "true"}),
    ]


def test_forms_need_this_sessions_csrf_token(service: Service) -> None:
    plan_id, applied_id = needs_approval(service), applied(service)
    validation = service.ws.get(plan_id).validation_id
    assert validation is not None
    client, csrf = sign_in(service)
    _other, other_csrf = sign_in(service)  # the attacker's own session, same role
    assert other_csrf != csrf
    for path, data in _form_posts(plan_id, applied_id, validation):
        for forged in ({}, {"csrf": ""}, {"csrf": "x" * 43}, {"csrf": other_csrf}):
            response = client.post(path, data={**data, **forged})
            assert response.status_code == 403, (path, forged, response.text)
            assert "security token" in response.text
    events = len(service.ws.audit_events(plan_id))
    untouched(service, plan_id, "validated")
    untouched(service, applied_id, "applied")
    assert len(service.ws.audit_events(plan_id)) == events  # not even a validation
    # The page's own form, with its token, works.
    response = client.post(
        f"/ui/plans/{plan_id}/approve",
        data={"comment": "ok", "validation": str(validation), "csrf": csrf},
    )
    assert response.status_code == 303, response.text
    assert service.ws.get(plan_id).status == "approved"


def test_form_posts_must_say_they_come_from_the_page(service: Service) -> None:
    """A cookie-authenticated POST with neither Origin nor Sec-Fetch-Site (an old browser, or a
    program replaying a stolen cookie and token) is refused; Sec-Fetch-Site alone suffices."""
    plan_id = needs_approval(service)
    validation = str(service.ws.get(plan_id).validation_id)
    client, csrf = sign_in(service)
    del client.headers["Origin"]
    data = {"comment": "ok", "validation": validation, "csrf": csrf}
    response = client.post(f"/ui/plans/{plan_id}/approve", data=data)
    assert response.status_code == 403 and "did not say" in response.text
    untouched(service, plan_id, "validated")
    response = client.post(
        f"/ui/plans/{plan_id}/approve", data=data, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert response.status_code == 303, response.text


@pytest.mark.parametrize(
    "headers",
    [ATTACKS["another port"], ATTACKS["same-site fetch"], ATTACKS["cross-site"], {}],
    ids=["another-port", "same-site", "cross-site", "no-origin"],
)
def test_login_csrf_is_refused(service: Service, headers: dict[str, str]) -> None:
    """Another page must not sign this browser in with the attacker's token."""
    _id, mallory = create_token(service.ws, f"mallory-{next(_names)}", Role.AGENT)
    with httpx.Client(base_url=service.url, headers=headers) as victim:
        response = victim.post("/ui/sign-in", data={"token": mallory, "next": "/ui/"})
        assert response.status_code == 403, response.text
        assert "set-cookie" not in response.headers
        assert not victim.cookies


# --- F2 (f): the page's own sessions ------------------------------------------------------------


def test_the_cookie_is_a_session_not_the_token(service: Service) -> None:
    token = service.tokens[Role.APPROVER]
    with httpx.Client(base_url=service.url, headers={"Origin": service.url}) as client:
        response = client.post("/ui/sign-in", data={"token": token, "next": "/ui/"})
        assert response.status_code == 303
        cookie = response.headers["set-cookie"]
        secret = client.cookies["airlock_session"]
    assert token not in cookie and secret not in token
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/", f"max-age={12 * 3600}"} <= attributes
    assert "secure" not in attributes  # plain http on loopback: a Secure cookie would be lost
    with service.ws.read_session() as session:
        rows = session.scalars(select(WebSessionRow)).all()
        stored = [row.id_sha256 for row in rows]
    assert hashlib.sha256(secret.encode()).hexdigest() in stored
    assert all(secret not in (row.id_sha256, row.csrf) for row in rows)


def test_over_https_the_cookie_is_secure_and_host_only(service: Service) -> None:
    """Behind a TLS proxy (X-Forwarded-Proto from a trusted address): ``__Host-`` and Secure,
    which a sibling subdomain cannot overwrite."""
    own = f"https://127.0.0.1:{port_of(service)}"
    headers = {"X-Forwarded-Proto": "https", "Origin": own}
    with httpx.Client(base_url=service.url, headers=headers) as client:
        response = client.post(
            "/ui/sign-in", data={"token": service.tokens[Role.APPROVER], "next": "/ui/"}
        )
        assert response.status_code == 303, response.text
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("__Host-airlock_session=")
        assert "secure" in cookie.lower()
        # Over https the plain name is not read, so a cookie planted over http does not count.
        planted = httpx.Cookies({"airlock_session": cookie.split(";")[0].split("=", 1)[1]})
        response = httpx.get(service.url + "/ui/", headers=headers, cookies=planted)
        assert response.status_code == 303 and "/ui/sign-in" in response.headers["location"]


def test_sign_out_revokes_the_session_on_the_server(service: Service) -> None:
    plan_id = needs_approval(service)
    validation = str(service.ws.get(plan_id).validation_id)
    client, csrf = sign_in(service)
    stolen = dict(client.cookies)
    assert client.post("/ui/sign-out", data={"csrf": csrf}).status_code == 303
    with httpx.Client(base_url=service.url, headers={"Origin": service.url}) as thief:
        thief.cookies.update(stolen)
        response = thief.get("/ui/")
        assert response.status_code == 303 and "/ui/sign-in" in response.headers["location"]
        response = thief.post(
            f"/ui/plans/{plan_id}/approve",
            data={"comment": "ok", "validation": validation, "csrf": csrf},
        )
        assert response.status_code == 303 and "/ui/sign-in" in response.headers["location"]
    untouched(service, plan_id, "validated")


def test_sign_out_needs_the_csrf_token(service: Service) -> None:
    client, _csrf = sign_in(service)
    assert client.post("/ui/sign-out", data={}).status_code == 403
    assert client.get("/ui/").status_code == 200  # still signed in


def test_revoking_the_token_ends_its_sessions(service: Service) -> None:
    token_id, token = create_token(service.ws, f"short-lived-{next(_names)}", Role.APPROVER)
    client, _csrf = sign_in(service, token=token)
    assert client.get("/ui/").status_code == 200
    revoke_token(service.ws, token_id)
    response = client.get("/ui/")
    assert response.status_code == 303 and "/ui/sign-in" in response.headers["location"]


def test_sessions_expire_and_their_lifetime_is_a_setting(tmp_path: Path) -> None:
    with running_service(tmp_path / "ws", Settings(session_hours=0.5)) as short:
        ws = short.ws
        token_id = short.token_ids[Role.APPROVER]
        who = Principal(TOKEN_NAMES[Role.APPROVER], Role.APPROVER, via=f"token:{token_id}")
        start = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
        secret, session = start_session(ws, who, dt.timedelta(hours=1), now=start)
        assert session.expires_at == start + dt.timedelta(hours=1)
        assert find_session(ws, secret, now=start + dt.timedelta(minutes=59)) is not None
        assert find_session(ws, secret, now=start + dt.timedelta(hours=1)) is None
        assert find_session(ws, secret + "x") is None and find_session(ws, "") is None
        fresh, _session = start_session(ws, who)
        assert end_session(ws, fresh) and not end_session(ws, fresh)
        assert find_session(ws, fresh) is None
        with httpx.Client(base_url=short.url, headers={"Origin": short.url}) as client:
            response = client.post("/ui/sign-in", data={"token": short.tokens[Role.APPROVER]})
            assert "max-age=1800" in response.headers["set-cookie"].lower()


# --- F3: decisions name the validation they were made on ----------------------------------------


def _revalidated(service: Service, plan_id: str) -> tuple[int, int]:
    """The plan's validation id, then a newer one after its file changed: (shown, newer)."""
    shown = service.ws.get(plan_id).validation_id
    assert shown is not None
    (service.root / service.ws.get(plan_id).plan.scope / "b.txt").write_text("changed\n" * 500)
    newer = service.ws.validate(plan_id, by=person(AGENT, Role.AGENT))
    assert newer.status == "validated" and newer.validation_id not in (None, shown)
    assert newer.validation_id is not None
    return shown, newer.validation_id


def test_core_refuses_a_decision_on_an_older_validation(service: Service) -> None:
    plan_id = needs_approval(service)
    shown, newer = _revalidated(service, plan_id)
    for decide in (service.ws.approve, service.ws.reject):
        with pytest.raises(PlanStateError, match="the plan changed since you looked; reload"):
            decide(plan_id, by=person("jane"), validation_id=shown)
    untouched(service, plan_id, "validated")
    record = service.ws.approve(plan_id, by=person("jane"), validation_id=newer)
    assert record.status == "approved"


def test_native_api_approve_carries_the_validation(service: Service) -> None:
    approver = service.client(Role.APPROVER)
    plan_id = needs_approval(service)
    shown = json_of(approver.get(f"{API}/plans/{plan_id}"))["validation_id"]
    _old, newer = _revalidated(service, plan_id)
    for action in ("approve", "reject"):
        response = approver.post(
            f"{API}/plans/{plan_id}/{action}", json={"comment": "ok", "validation_id": shown}
        )
        body = check_error(response, 409, "the plan changed since you looked; reload")
        assert body["error"] == "PlanStateError" and body["hint"]
    untouched(service, plan_id, "validated")
    response = approver.post(f"{API}/plans/{plan_id}/approve", json={"validation_id": newer})
    assert response.status_code == 200 and json_of(response)["status"] == "approved"


def test_seed_approve_takes_an_optional_validation(service: Service) -> None:
    approver = service.client(Role.APPROVER)
    plan_id = needs_approval(service)
    shown, newer = _revalidated(service, plan_id)
    response = approver.post(f"/plans/{plan_id}/approve", params={"validation": shown})
    check_error(response, 409, "the plan changed since you looked")
    untouched(service, plan_id, "validated")
    response = approver.post(f"/plans/{plan_id}/approve", params={"validation": newer})
    assert json_of(response) == {"status": "approved", "plan_id": plan_id}
    # Without the parameter, the seed contract as it was.
    other = needs_approval(service)
    response = approver.post(f"/plans/{other}/approve", params={"approved_by": "Jane"})
    assert json_of(response) == {"status": "approved", "plan_id": other}


def test_web_form_posted_after_a_revalidation_is_refused(service: Service) -> None:
    """Page loaded, plan re-validated with changed files, then the form posted."""
    plan_id = needs_approval(service)
    client, csrf = sign_in(service)
    page = client.get(f"/ui/plans/{plan_id}").text
    shown = re.search(r'name="validation" value="(\d+)"', page)
    assert shown and int(shown.group(1)) == service.ws.get(plan_id).validation_id
    _revalidated(service, plan_id)
    data = {"comment": "ok", "validation": shown.group(1), "csrf": csrf}
    response = client.post(f"/ui/plans/{plan_id}/approve", data=data)
    assert response.status_code == 409
    assert "the plan changed since you looked; reload" in response.text
    # The form must say which report it was: without it, nothing is decided either.
    response = client.post(f"/ui/plans/{plan_id}/approve", data={"csrf": csrf})
    assert response.status_code == 400 and "which report" in response.text
    untouched(service, plan_id, "validated")


def test_cli_approve_with_an_older_validation_is_refused(service: Service) -> None:
    import sys

    plan_id = needs_approval(service)
    shown, newer = _revalidated(service, plan_id)

    def approve(validation: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *(sys.executable, "-m", "airlock", "plan", "approve", plan_id, "--actor", "dana"),
                *("--validation", str(validation), "--workspace", str(service.root), "--json"),
            ],
            capture_output=True,
            text=True,
            env=child_env(),
            check=False,
            timeout=120,
        )

    refused = approve(shown)
    assert refused.returncode == 5, refused.stdout + refused.stderr
    assert json.loads(refused.stdout)["error"] == "PlanStateError"
    untouched(service, plan_id, "validated")
    done = approve(newer)
    assert done.returncode == 0 and json.loads(done.stdout)["status"] == "approved"


# --- F8: documentation pages and security headers -----------------------------------------------


REFERENCE = re.compile(r"""(?:src|href|action|formaction)\s*=\s*["']([^"']*)["']""", re.I)


def _external(html: str) -> list[str]:
    return [
        ref
        for ref in REFERENCE.findall(html)
        if re.match(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", ref, re.I)
    ]


def test_docs_pages_are_off_by_default(service: Service) -> None:
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect", "/docs.js"):
        check_error(httpx.get(service.url + path), 404)
    assert httpx.get(service.url + "/openapi.json").status_code == 200


def test_no_page_references_another_origin_and_every_page_has_its_headers(
    service: Service,
) -> None:
    plan_id, applied_id = needs_approval(service), applied(service)
    client, _csrf = sign_in(service)
    pages = [
        "/ui/sign-in",
        "/ui/",
        "/ui/?tab=applied",
        f"/ui/plans/{plan_id}",
        f"/ui/plans/{applied_id}",
        f"/ui/plans/{applied_id}/rollback",
        "/ui/plans/no-such-plan",
    ]
    for path in pages:
        response = client.get(path)
        assert response.status_code in (200, 404), (path, response.status_code)
        assert response.headers["content-type"].startswith("text/html")
        assert _external(response.text) == [], path
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "http" not in policy, policy
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
    for path in ("/health", "/openapi.json", f"{API}/plans", "/no-such-route"):
        response = httpx.get(service.url + path)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], path


def test_docs_turned_on_load_only_a_pinned_integrity_checked_release(tmp_path: Path) -> None:
    with running_service(tmp_path / "ws", Settings(docs=True)) as documented:
        page = httpx.get(documented.url + "/docs")
        assert page.status_code == 200
        external = _external(page.text)
        assert sorted(external) == sorted(
            f"{docs.SWAGGER_UI}/{name}" for name, _ in (docs.SWAGGER_UI_JS, docs.SWAGGER_UI_CSS)
        )
        assert re.search(r"@\d+\.\d+\.\d+$", docs.SWAGGER_UI), "a release, not a moving tag"
        for name, digest in (docs.SWAGGER_UI_JS, docs.SWAGGER_UI_CSS):
            tag = next(t for t in re.findall(r"<[^>]+>", page.text) if name in t)
            assert f'integrity="{digest}"' in tag and 'crossorigin="anonymous"' in tag
            assert digest.startswith("sha384-")
        policy = page.headers["content-security-policy"]
        origins = set(re.findall(r"https?://[^\s;]+", policy))
        assert origins == {docs.CDN_ORIGIN}
        assert "'unsafe-inline'" not in policy and "frame-ancestors 'none'" in policy
        assert "<script>" not in page.text  # no inline script: its start-up is /docs.js
        assert page.headers["x-content-type-options"] == "nosniff"
        script = httpx.get(documented.url + "/docs.js")
        assert script.status_code == 200 and "http" not in script.text
        assert script.headers["content-type"].startswith("text/javascript")
        check_error(httpx.get(documented.url + "/redoc"), 404)


# --- F19: the OpenAPI document, OPTIONS and 405 -------------------------------------------------


@pytest.fixture(scope="module")
def openapi(service: Service) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(service.url + "/openapi.json").json()
    return document


def test_openapi_declares_the_bearer_scheme(openapi: dict[str, Any]) -> None:
    scheme = openapi["components"]["securitySchemes"]["bearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            expected: list[dict[str, list[str]]] = [] if path == "/health" else [{"bearer": []}]
            assert operation.get("security", []) == expected, (method, path)


def test_openapi_describes_ids_as_the_code_checks_them(openapi: dict[str, Any]) -> None:
    seen = set()
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] != "path":
                    continue
                schema = parameter["schema"]
                seen.add(parameter["name"])
                if parameter["name"] == "call":  # an agent session's call: one of a list
                    name = schema["$ref"].rsplit("/", 1)[-1]
                    assert openapi["components"]["schemas"][name]["enum"] == list(wire.CALLS)
                    continue
                expected = {"plan_id": PLAN_ID_PATTERN, "job_id": JOB_ID_PATTERN}
                assert schema.get("pattern") == expected[parameter["name"]], (method, path)
    assert seen == {"plan_id", "job_id", "call"}
    samples = ["a", "A.b_c-d", "0" * 100, "0" * 101, "", ".x", "-x", "a/b", "é", "a b", "x\n"]
    for sample in samples:
        try:
            check_plan_id(sample)
            accepted = True
        except PlanFormatError:
            accepted = False
        assert accepted == bool(re.fullmatch(PLAN_ID_PATTERN, sample)), sample


def test_ids_valid_by_the_schema_are_accepted(service: Service) -> None:
    agent, approver = service.client(Role.AGENT), service.client(Role.APPROVER)
    plan_id = "Z" + "y.x_w-" * 16 + "abc"
    assert len(plan_id) == 100 and re.fullmatch(PLAN_ID_PATTERN, plan_id)
    body = {
        "scope": new_case(service),
        "author": AGENT,
        "operations": [{"op": "write", "path": "new.txt", "text": "x\n"}],
    }
    response = agent.post(f"{API}/plans", params={"plan_id": plan_id}, json=body)
    assert response.status_code == 201, response.text
    assert agent.get(f"{API}/plans/{plan_id}").status_code == 200
    assert agent.post(f"/plans/{plan_id}/validate").status_code == 200
    job = json_of(agent.post(f"{API}/plans/{plan_id}/apply"))
    assert re.fullmatch(JOB_ID_PATTERN, job["job_id"]), job
    assert approver.get(f"{API}/jobs/{job['job_id']}").status_code == 200


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        (f"{API}/plans", "GET, OPTIONS, POST"),
        (f"{API}/plans/p1", "GET, OPTIONS"),
        (f"{API}/plans/p1/approve", "OPTIONS, POST"),
        (f"{API}/jobs/job_0123456789ab", "GET, OPTIONS"),
        ("/plans", "OPTIONS, POST"),
        ("/plans/p1/rollback", "OPTIONS, POST"),
        ("/health", "GET, OPTIONS"),
        ("/openapi.json", "GET, HEAD, OPTIONS"),
        ("/ui/plans/p1/approve", "OPTIONS, POST"),
    ],
)
def test_options_answers_the_allowed_methods_and_no_cors(
    service: Service, path: str, allow: str
) -> None:
    for headers in (
        {},
        {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    ):
        response = httpx.options(service.url + path, headers=headers)
        assert response.status_code == 204, (path, response.status_code, response.text)
        assert response.headers["allow"] == allow
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]


def test_options_on_no_route_is_404_and_a_wrong_method_is_405_with_allow(
    service: Service,
) -> None:
    check_error(httpx.options(service.url + "/no-such-route"), 404, "/openapi.json")
    response = service.client(Role.AGENT).delete(f"{API}/plans")
    body = check_error(response, 405, "GET, OPTIONS, POST", "/openapi.json")
    assert response.headers["allow"] == "GET, OPTIONS, POST"
    assert body["error"] == "MethodNotAllowedError"
