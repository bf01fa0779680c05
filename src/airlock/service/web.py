"""The review web page: where a person signs in, reviews a plan, decides, applies and rolls back.

Server-rendered (Jinja2 templates in ``templates/``, CSS and one small script in ``static/``), no
build step. Every action goes through the same Workspace and Jobs objects as the HTTP API, and the
same decisions: a page shows the buttons :func:`~airlock.permissions.allowed_actions` allows, and
the core refuses any action itself.

Signing in with a token starts a session of the page's own (:mod:`airlock.sessions`): the
cookie (``airlock_session``, ``__Host-airlock_session`` over https; HttpOnly, SameSite=Strict)
holds a random secret, never the token, and sign-out revokes it on the server. The APIs do not
accept this cookie at all (bearer tokens only), so a page can only drive this one.

CSRF: SameSite=Strict is not enough, because a page on another port of this host or on a sibling
subdomain is the *same site* and its requests carry the cookie. So every POST here, sign-in
included, must (1) come from this origin as the browser reports it (``Origin`` or
``Sec-Fetch-Site: same-origin``; :mod:`airlock.service.guards` has already refused any other
origin), and (2) except sign-in, carry the session's CSRF token in a hidden field. A decision
also carries the validation the page showed, so a plan checked again after the page was loaded
is refused rather than approved unseen. Pages forbid framing and load nothing from elsewhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from airlock import plan_diff, plan_lists, text_diff
from airlock.before_after import scope_relative
from airlock.errors import (
    AirlockError,
    AuthenticationError,
    InputError,
    NotFoundError,
    NotPermittedError,
    RollbackConflictError,
)
from airlock.permissions import Action, Principal, allowed_actions, authorize, refusal
from airlock.report import human_bytes, reasons
from airlock.service import plan_view, review
from airlock.service.deps import jobs as _jobs
from airlock.service.deps import workspace as _ws
from airlock.service.guards import from_own_origin
from airlock.service.http_errors import error_response
from airlock.service.settings import Settings
from airlock.sessions import WebSession, end_session, find_session, start_session
from airlock.tokens import authenticate

router = APIRouter(prefix="/ui", include_in_schema=False)
log = logging.getLogger("airlock.service")

HERE = Path(__file__).parent
STATIC = HERE / "static"
STATIC_TYPES = {"airlock.css": "text/css", "airlock.js": "text/javascript"}
STATIC_VERSION = hashlib.sha256(
    b"".join((STATIC / name).read_bytes() for name in sorted(STATIC_TYPES))
).hexdigest()[:12]

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["bytes"] = lambda size: "—" if size is None else human_bytes(int(size))
templates.env.filters["age"] = review.age
templates.env.filters["when"] = review.when
templates.env.filters["shown"] = plan_view.shown
templates.env.filters["visible"] = text_diff.visible
templates.env.globals.update(
    static_version=STATIC_VERSION,
    tabs=review.TABS,
    status_labels=review.STATUS_LABELS,
    event_labels=review.EVENT_LABELS,
    event_summary=review.event_summary,
    change_badges=review.change_badges,
    raw_details=plan_view.raw_details,
)

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

DONE_MESSAGES = {
    "approved": "Approved. The approval is bound to this exact plan (its digest).",
    "rejected": "Rejected. The plan will not be applied.",
    "validated": "Checked again against the files as they are now.",
}

SESSION_COOKIE = "airlock_session"
SECURE_SESSION_COOKIE = "__Host-airlock_session"
"""Over https the cookie takes the ``__Host-`` prefix: the browser then accepts it only from this
host, Secure, for path /, so a sibling subdomain cannot plant a session of its choosing."""


def _root(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root


def _ui(request: Request, path: str = "/") -> str:
    return _root(request) + "/ui" + path


def _cookie_name(request: Request) -> str:
    return SECURE_SESSION_COOKIE if request.url.scheme == "https" else SESSION_COOKIE


def _session(request: Request) -> WebSession | None:
    """The request's live session (looked up once per request), or None."""
    if not hasattr(request.state, "web_session"):
        secret = request.cookies.get(_cookie_name(request), "")
        request.state.web_session = find_session(_ws(request), secret) if secret else None
    found: WebSession | None = request.state.web_session
    return found


def _who(request: Request) -> Principal | None:
    session = _session(request)
    return session.principal if session is not None else None


def _refused_change(request: Request, session: WebSession, csrf: str) -> AirlockError | None:
    """Why a POST of this session's must not run, or None: it must come from this origin as the
    browser reports it, and carry the session's CSRF token."""
    if not from_own_origin(request.scope):
        return NotPermittedError(
            "refused: the browser did not say that this request came from the review page "
            "(no Origin or Sec-Fetch-Site header)",
            hint="use the review page in a current browser; programs use the API with "
            "'Authorization: Bearer <token>'",
        )
    if not session.csrf_matches(csrf):
        return NotPermittedError(
            "refused: this form did not come from your signed-in page (its security token is "
            "missing or out of date)",
            hint="reload the page and try again; if it keeps happening, sign out and in again",
        )
    return None


def _shown_validation(text: str) -> int:
    """The validation id a decision form carries: the report the person looked at."""
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise InputError(
            "the form does not say which report of the plan you reviewed",
            hint="reload the plan's page and decide again",
        )
    return int(text)


def _to_sign_in(request: Request, plan_id: str | None = None) -> RedirectResponse:
    """To the sign-in form, and from there back here (or, after a form, to the plan's page)."""
    if plan_id is not None:
        here = _ui(request, f"/plans/{quote(plan_id, safe='')}")
    else:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(_ui(request, "/sign-in?next=" + quote(here, safe="")), 303)


def _page(
    request: Request,
    name: str,
    who: Principal | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    root = _root(request)
    session: WebSession | None = getattr(request.state, "web_session", None)
    context.update(
        who=who,
        ui=root + "/ui",
        api=root + "/api/v1",
        csrf=session.csrf if session is not None and who is not None else "",
    )
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


def _error_page(request: Request, who: Principal | None, error: AirlockError) -> HTMLResponse:
    return _page(request, "error.html", who, error.http_status, error=error)


def _succeeds(action: Callable[[], object]) -> bool:
    try:
        action()
    except AirlockError:
        return False
    return True


# --- static files and sign-in ---------------------------------------------------------------


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    if name not in STATIC_TYPES:
        raise HTTPException(status_code=404)
    return FileResponse(
        STATIC / name,
        media_type=STATIC_TYPES[name],
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


def _safe_next(request: Request, target: str) -> str:
    """Only a path on this page (never another site) may follow sign-in."""
    base = _ui(request, "/")
    if target.startswith(base) and not target.startswith("//") and "\\" not in target:
        return target
    return base


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request, next: str = "") -> Response:
    return _page(request, "sign_in.html", _who(request), next=_safe_next(request, next))


@router.post("/sign-in", response_class=HTMLResponse)
def sign_in(
    request: Request,
    token: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    # Login CSRF: another page must not sign this browser in as someone else (its token).
    if not from_own_origin(request.scope):
        return _page(
            request,
            "sign_in.html",
            None,
            403,
            next=_safe_next(request, next),
            failed="Refused: this sign-in did not come from this page. Type your token here.",
        )
    principal = authenticate(_ws(request), token.strip()) if token.strip() else None
    if principal is None:
        return _page(
            request,
            "sign_in.html",
            None,
            401,
            next=_safe_next(request, next),
            failed="That token was not accepted: it is unknown, mistyped or revoked.",
        )
    ws = _ws(request)
    previous = request.cookies.get(_cookie_name(request), "")
    if previous:
        end_session(ws, previous)
    settings: Settings = request.app.state.settings
    lifetime = dt.timedelta(hours=settings.session_hours)
    secret, _session_started = start_session(ws, principal, lifetime)
    log.info("signed in", extra={"fields": {"token": principal.token_id, "name": principal.name}})
    response = RedirectResponse(_safe_next(request, next), 303)
    response.set_cookie(
        _cookie_name(request),
        secret,
        max_age=int(lifetime.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/sign-out")
def sign_out(request: Request, csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
    session = _session(request)
    if session is not None:
        refused = _refused_change(request, session, csrf)
        if refused is not None:
            return _error_page(request, session.principal, refused)
        end_session(_ws(request), request.cookies.get(_cookie_name(request), ""))
    response = RedirectResponse(_ui(request, "/sign-in"), 303)
    response.delete_cookie(
        _cookie_name(request),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


# --- the list of plans -----------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def plans(request: Request) -> Response:
    """The list of plans: one tab, filtered (``q``, ``case``, ``author``, ``from``, ``to``), a
    page (``page``) at a time; a filter that cannot be read is ignored and said so."""
    who = _who(request)
    if who is None:
        return _to_sign_in(request)
    asked = request.query_params
    tab: plan_lists.Tab = next((k for k in plan_lists.TAB_KEYS if k == asked.get("tab")), "review")
    problems: list[str] = []
    text = asked.get("q", "").strip()
    if len(text) > plan_lists.TEXT_LIMIT:
        problems.append(f"The search was cut to its first {plan_lists.TEXT_LIMIT} characters.")
    days: dict[str, dt.date | None] = {}
    for key in ("from", "to"):
        try:
            days[key] = plan_lists.parse_day(asked.get(key, ""))
        except InputError as exc:
            days[key] = None
            problems.append(f"{exc.message} ({exc.hint}): the “{key}” date is not applied.")
    where = plan_lists.PlanFilter(
        scope=asked.get("case") or None,
        author=asked.get("author") or None,
        since=days["from"],
        until=days["to"],
        text=text,
    )
    try:
        listing = _ws(request).plan_page(
            tab, where, page=plan_view.page_number(asked.get("page", "")), by=who
        )
    except AirlockError as exc:
        return _error_page(request, who, exc)
    asked_for = {
        "q": where.text,
        "case": where.scope or "",
        "author": where.author or "",
        "from": where.since.isoformat() if where.since else "",
        "to": where.until.isoformat() if where.until else "",
    }
    filters = urlencode({key: value for key, value in asked_for.items() if value})
    return _page(
        request,
        "plans.html",
        who,
        tab=tab,
        listing=listing,
        plans=listing.plans,
        counts=listing.tab_counts,
        pager=plan_view.pager(listing.total, listing.number, listing.per_page),
        where=where,
        asked=asked_for,
        filters=filters,
        problems=problems,
    )


# --- one plan --------------------------------------------------------------------------------


def _plan_page(
    request: Request,
    who: Principal,
    plan_id: str,
    *,
    error: AirlockError | None = None,
    done: str = "",
    job_id: str = "",
    page: int = 1,
) -> HTMLResponse:
    ws = _ws(request)
    # The job first: a job seen finished has already recorded the plan's new state.
    job = _jobs(request).get(job_id) if job_id else None
    if job is not None and job.plan_id != plan_id:
        job = None
    job_finished = job is not None and job.finished.is_set()
    job_seen = job.to_dict() if job is not None else None
    try:
        record = ws.get(plan_id, by=who)
    except AirlockError as exc:
        return _error_page(request, who, exc)
    allowed = allowed_actions(who, record)
    validation = record.validation
    changes = validation.changes if validation else []
    # While an apply or rollback runs the files are between two states: the trees are drawn
    # from the scope as the job found it when it began (if this service runs it).
    between = record.status in ("applying", "rolling_back")
    running = _jobs(request).running(plan_id) if between else None
    view = plan_view.build(
        record.plan,
        validation,
        ws.storage,
        applied=record.status == "applied" or (running is not None and running.kind == "rollback"),
        page=page,
        content=ws.content,
        listing=running.listing if running is not None else None,
        between=between,
    )
    chain = ws.audit_verify_plan(plan_id, by=who)
    diffs, more_diffs = plan_diff.page_diffs(ws, record, (c.op for c in view.rows))
    return _page(
        request,
        "plan.html",
        who,
        error.http_status if error else 200,
        record=record,
        plan=record.plan,
        validation=validation,
        changes=changes,
        scope=record.plan.scope,
        rel=lambda path: scope_relative(path or "", record.plan.scope),
        view=view,
        trees=view.trees,
        previews=view.previews,
        diffs=diffs,
        more_diffs=more_diffs,
        reasons=reasons(record.plan.operations),
        events=ws.audit_events(plan_id, by=who),
        chain=chain,
        tab=review.tab_of(record.status, bool(validation and validation.needs_approval)),
        can_decide=Action.REJECT in allowed,
        is_author=who.name == record.author,
        can_apply=_succeeds(lambda: ws.check_applyable(plan_id, by=who)),
        can_validate=Action.VALIDATE in allowed,
        can_roll_back=Action.ROLLBACK in allowed,
        job=job_seen,
        job_finished=job_finished,
        error=error,
        done=DONE_MESSAGES.get(done, ""),
    )


@router.get("/plans/{plan_id}", response_class=HTMLResponse)
def plan(request: Request, plan_id: str, done: str = "", job: str = "", page: str = "") -> Response:
    who = _who(request)
    if who is None:
        return _to_sign_in(request)
    number = plan_view.page_number(page)
    return _plan_page(request, who, plan_id, done=done, job_id=job, page=number)


def _act(
    request: Request,
    plan_id: str,
    csrf: str,
    action: Callable[[Principal], str],
) -> Response:
    """Run a form's action as the signed-in person; on success go back to the plan (POST, then
    redirect, then GET), on a refusal show the plan again with the reason and its status code."""
    session = _session(request)
    if session is None:
        return _to_sign_in(request, plan_id)
    who = session.principal
    refused = _refused_change(request, session, csrf)
    if refused is not None:
        return _error_page(request, who, refused)
    try:
        query = action(who)
    except NotFoundError as exc:
        return _error_page(request, who, exc)
    except AirlockError as exc:
        return _plan_page(request, who, plan_id, error=exc)
    return RedirectResponse(_ui(request, f"/plans/{quote(plan_id, safe='')}?{query}"), 303)


Comment = Annotated[str, Form(max_length=10_000)]
Csrf = Annotated[str, Form(max_length=200)]
Shown = Annotated[str, Form(max_length=40)]
"""The id of the validation the page showed (the report the person decided on)."""


# --- what is kept aside -----------------------------------------------------------------------


def _trash_page(request: Request, who: Principal, error: AirlockError | None = None) -> Response:
    from airlock.trash import kept_aside

    ws = _ws(request)
    try:
        items = kept_aside(ws, by=who)
    except AirlockError as exc:
        return _error_page(request, who, exc)
    return _page(
        request,
        "trash.html",
        who,
        error.http_status if error else 200,
        items=items,
        can_restore=refusal(who, Action.SUBMIT) is None,
        error=error,
    )


@router.get("/trash", response_class=HTMLResponse)
def trash(request: Request) -> Response:
    who = _who(request)
    if who is None:
        return _to_sign_in(request)
    return _trash_page(request, who)


@router.post("/trash/restore")
def trash_restore(
    request: Request, item: Annotated[str, Form(max_length=200)] = "", csrf: Csrf = ""
) -> Response:
    """Make the plan that restores a kept-aside entry, then show it (to be reviewed)."""
    from airlock.trash import restore

    session = _session(request)
    if session is None:
        return _to_sign_in(request)
    who = session.principal
    refused = _refused_change(request, session, csrf)
    if refused is not None:
        return _error_page(request, who, refused)
    try:
        record = restore(_ws(request), item, by=who)
    except AirlockError as exc:
        return _trash_page(request, who, exc)
    return RedirectResponse(_ui(request, f"/plans/{quote(record.id, safe='')}"), 303)


@router.post("/plans/{plan_id}/approve")
def approve(
    request: Request, plan_id: str, comment: Comment = "", csrf: Csrf = "", validation: Shown = ""
) -> Response:
    def run(who: Principal) -> str:
        _ws(request).approve(
            plan_id,
            by=who,
            comment=comment.strip(),
            validation_id=_shown_validation(validation),
        )
        return "done=approved"

    return _act(request, plan_id, csrf, run)


@router.post("/plans/{plan_id}/reject")
def reject(
    request: Request, plan_id: str, comment: Comment = "", csrf: Csrf = "", validation: Shown = ""
) -> Response:
    def run(who: Principal) -> str:
        _ws(request).reject(
            plan_id,
            by=who,
            comment=comment.strip(),
            validation_id=_shown_validation(validation),
        )
        return "done=rejected"

    return _act(request, plan_id, csrf, run)


@router.post("/plans/{plan_id}/validate")
def revalidate(request: Request, plan_id: str, csrf: Csrf = "") -> Response:
    def run(who: Principal) -> str:
        _ws(request).validate(plan_id, by=who)
        return "done=validated"

    return _act(request, plan_id, csrf, run)


@router.post("/plans/{plan_id}/apply")
def apply(request: Request, plan_id: str, csrf: Csrf = "") -> Response:
    def run(who: Principal) -> str:
        _ws(request).check_applyable(plan_id, by=who)
        job = _jobs(request).start(plan_id, "apply", who)
        return "job=" + job.id

    return _act(request, plan_id, csrf, run)


@router.get("/jobs/{job_id}")
def job(request: Request, job_id: str) -> JSONResponse:
    """A job's progress, for the page's script (the API's /jobs wants a bearer token)."""
    who = _who(request)
    if who is None:
        return _json_error(
            AuthenticationError("not signed in", hint="sign in on the review page again")
        )
    authorize(who, Action.READ)
    found = _jobs(request).get(job_id)
    if found is None:
        return _json_error(
            NotFoundError(f"no job {job_id!r}", hint="jobs are kept while the service runs")
        )
    return JSONResponse(found.to_dict(), headers=SECURITY_HEADERS)


def _json_error(error: AirlockError) -> JSONResponse:
    return error_response(error, headers=SECURITY_HEADERS)


# --- rollback ----------------------------------------------------------------------------------


def _rollback_page(
    request: Request, who: Principal, plan_id: str, error: AirlockError | None = None
) -> HTMLResponse:
    ws = _ws(request)
    try:
        record = ws.get(plan_id, by=who)
        authorize(who, Action.ROLLBACK, record)
        conflicts = ws.rollback_conflicts(plan_id, by=who)
    except (NotFoundError, NotPermittedError) as exc:
        return _error_page(request, who, exc)
    except AirlockError as exc:  # e.g. not applied, or its kept-aside files were purged
        return _plan_page(request, who, plan_id, error=exc)
    return _page(
        request,
        "rollback.html",
        who,
        error.http_status if error else 200,
        record=record,
        plan=record.plan,
        counts=record.validation.counts if record.validation else {},
        conflicts=conflicts,
        rel=lambda path: scope_relative(path, record.plan.scope),
        error=error,
    )


@router.get("/plans/{plan_id}/rollback", response_class=HTMLResponse)
def rollback_form(request: Request, plan_id: str) -> Response:
    who = _who(request)
    if who is None:
        return _to_sign_in(request)
    return _rollback_page(request, who, plan_id)


@router.post("/plans/{plan_id}/rollback")
def rollback(
    request: Request, plan_id: str, force: Annotated[bool, Form()] = False, csrf: Csrf = ""
) -> Response:
    session = _session(request)
    if session is None:
        return _to_sign_in(request, plan_id)
    who = session.principal
    refused = _refused_change(request, session, csrf)
    if refused is not None:
        return _error_page(request, who, refused)
    ws = _ws(request)
    try:
        ws.check_rollback(plan_id, force=force, by=who)
    except (NotFoundError, NotPermittedError) as exc:
        return _error_page(request, who, exc)
    except RollbackConflictError as exc:
        if exc.forceable:  # only what "roll back anyway" sets aside, not a refusal
            exc.hint = "review them below; tick “roll back anyway” to set them aside and roll back"
        return _rollback_page(request, who, plan_id, error=exc)
    except AirlockError as exc:
        return _plan_page(request, who, plan_id, error=exc)
    try:
        job = _jobs(request).start(plan_id, "rollback", who, force=force)
    except AirlockError as exc:
        return _plan_page(request, who, plan_id, error=exc)
    return RedirectResponse(_ui(request, f"/plans/{quote(plan_id, safe='')}?job={job.id}"), 303)
