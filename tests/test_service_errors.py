"""The service's errors and answers, as its OpenAPI document promises them, against the real
running server: every error response is derived from ``airlock/errors.py`` and carries the one
body; every answer has a schema; a request that does not match the schema, and an exception no
code expected, still answer the one body (and the latter no traceback)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airlock import errors
from airlock.errors import AirlockError, ErrorBody
from airlock.service.http_errors import ERRORS_EXTENSION, EVERY_REQUEST
from airlock.tokens import Role
from servicekit import DEMO_CASE, Service, json_of, poll_until, running_service

API = "/api/v1"
ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
CLASSES = {cls.__name__: cls for cls in errors.error_classes()}
CALLER_KINDS = {"AuthenticationError", "NotPermittedError", "BusyError", "StorageError"}
NEVER_DOCUMENTED = {"AirlockError", "MethodNotAllowedError", "PreviewError"}
"""Never an operation's answer: the root is never raised as it is; a wrong method reaches no
operation (it is answered for the path, with ``Allow``); a preview is only the review page's
(not in the API's document)."""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("errors") / "ws") as running:
        yield running


@pytest.fixture(scope="module")
def openapi(service: Service) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(service.url + "/openapi.json").json()
    return document


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


def family(cls: type[AirlockError]) -> set[str]:
    """``cls`` and the classes below it that answer with its status."""
    return {
        c.__name__
        for c in errors.error_classes()
        if issubclass(c, cls) and c.http_status == cls.http_status
    }


def check_body(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = json_of(response)
    assert set(body) == set(ErrorBody.__annotations__), body
    assert body["error"] == kind, body
    assert body["message"] and body["detail"] == body["message"], body
    return body


# --- the OpenAPI document --------------------------------------------------------------------


def test_every_error_response_is_derived_from_the_error_tree(openapi: dict[str, Any]) -> None:
    every_request = set().union(*(family(cls) for cls in EVERY_REQUEST))
    documented: set[str] = set()
    for method, path, operation in operations(openapi):
        where = f"{method} {path}"
        kinds: set[str] = set()
        for status, response in operation["responses"].items():
            if status.startswith("2"):
                continue
            # The one body, a list of the classes that answer this status, described by them.
            assert response["content"] == {"application/json": {"schema": ERROR_REF}}, where
            listed = response[ERRORS_EXTENSION]
            assert listed and len(set(listed)) == len(listed), (where, status)
            for name in listed:
                cls = CLASSES[name]
                assert cls.http_status == int(status), (where, status, name)
                assert f"`{name}`: {cls.summary()}" in response["description"], (where, name)
                # A class brings the classes below it that answer the same status.
                assert family(cls) <= set(listed), (where, name)
            kinds |= set(listed)
        # Exactly the errors the route's shape implies, and those of what it does.
        assert kinds >= every_request, (where, every_request - kinds)
        secured = bool(operation.get("security"))
        assert (kinds >= CALLER_KINDS) == secured, where
        assert secured or not kinds & {"AuthenticationError", "NotPermittedError"}, where
        has_input = bool(operation.get("parameters")) or "requestBody" in operation
        assert ("RequestFormatError" in kinds) == has_input, where
        if re.search(r"\{\w+\}", path):
            assert "NotFoundError" in kinds, where
        runs_code = path.endswith("/runs") or path == "/api/v1/agent/{call}"  # (its execute)
        assert ("SandboxUnavailableError" in kinds) == runs_code, where
        if method == "POST":
            assert family(errors.ConflictError) <= kinds, where
        documented |= kinds
    # Every class a request can be answered with is documented by some route.
    assert documented == set(CLASSES) - NEVER_DOCUMENTED, set(CLASSES) ^ documented
    # No framework-made error shapes are left in the document.
    schemas = openapi["components"]["schemas"]
    assert not {"HTTPValidationError", "ValidationError"} & set(schemas)
    error = schemas["ErrorOut"]
    assert list(error["properties"]) == list(ErrorBody.__annotations__)
    assert set(error["required"]) == set(ErrorBody.__annotations__)


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = document["components"]["schemas"][name]
    return schema


def _described(document: dict[str, Any], schema: dict[str, Any]) -> bool:
    """Whether a schema says what the answer holds (not an empty or free-form object)."""
    schema = _resolve(document, schema)
    if schema.get("type") == "array":
        return _described(document, schema["items"])
    if schema.get("type") == "string":
        return True
    return bool(schema.get("properties")) and schema.get("additionalProperties") is not True


def test_every_answer_has_a_schema(openapi: dict[str, Any]) -> None:
    for method, path, operation in operations(openapi):
        answers = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
        assert len(answers) == 1, (method, path, answers)
        ((status, answer),) = answers.items()
        assert answer["content"], (method, path)
        for media, content in answer["content"].items():
            assert _described(openapi, content["schema"]), (method, path, status, media)


# --- the answers -----------------------------------------------------------------------------


def test_a_request_that_does_not_match_the_schema_gets_the_one_body(service: Service) -> None:
    agent = service.client(Role.AGENT)
    hostile = r'{"scope": 7, "operations": [{"op": "\udcff"}]}'  # a lone surrogate
    response = agent.post(
        f"{API}/plans", content=hostile, headers={"content-type": "application/json"}
    )
    body = check_body(response, 422, "RequestFormatError")
    assert "scope" in body["message"] and "(and " in body["message"], body
    assert any(line.startswith("body.scope") for line in body["details"]), body
    # Only the problems are named, never the whole input, and what is named is valid text.
    assert "operations.0" in " ".join(body["details"]) and "input" not in body, body
    response.content.decode("utf-8")
    # The seed door too, and a query parameter that is not a number.
    seed = agent.post("/plans", json={"case_name": DEMO_CASE, "operations": []})
    check_body(seed, 422, "RequestFormatError")
    approve = service.client(Role.APPROVER).post("/plans/x/approve?validation=many")
    assert "query.validation" in check_body(approve, 422, "RequestFormatError")["details"][0]


def test_the_frameworks_own_errors_get_the_one_body(service: Service) -> None:
    client = service.client(Role.AGENT)
    check_body(client.get("/no-such-route"), 404, "NotFoundError")
    check_body(client.delete(f"{API}/plans"), 405, "MethodNotAllowedError")
    unreadable = client.post(
        f"{API}/plans", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert unreadable.status_code in (400, 422), unreadable.text
    check_body(unreadable, unreadable.status_code, json_of(unreadable)["error"])
    unauthenticated = service.client().get(f"{API}/plans")
    check_body(unauthenticated, 401, "AuthenticationError")
    assert unauthenticated.headers["www-authenticate"] == "Bearer"


def test_an_unexpected_exception_is_a_500_with_the_one_body_and_no_traceback(
    service: Service, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "password=hunter2 at /srv/private/notes.txt"  # noqa: S105 - a made-up one

    def broken(*_args: object, **_kwargs: object) -> object:
        raise RuntimeError(secret)

    monkeypatch.setattr(service.ws, "list_plans", broken)
    with caplog.at_level(logging.ERROR, logger="airlock.service"):
        response = service.client(Role.AGENT).get(f"{API}/plans")
    body = check_body(response, 500, "InternalError")
    assert "RuntimeError" in body["message"] and body["hint"]
    for leaked in ("Traceback", "hunter2", "/srv/private", 'File "'):
        assert leaked not in response.text, response.text
    # The answer passed through the middleware like any other (the default headers are on it),
    # and the traceback went to the log.
    assert response.headers["x-content-type-options"] == "nosniff"
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
    assert logged, caplog.records
    # The service is still up.
    assert service.client(Role.AGENT).get("/health").status_code == 200


def test_an_unexpected_exception_in_a_job_is_reported_on_the_job_in_the_one_body(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = service.client(Role.AGENT)
    submitted = agent.post(
        f"{API}/plans",
        json={
            "scope": f"projects/{DEMO_CASE}",
            "operations": [{"op": "write", "path": "job-error-probe.txt", "text": "x\n"}],
        },
    )
    assert submitted.status_code == 201, submitted.text
    plan_id = json_of(submitted)["plan_id"]

    def broken(*_args: object, **_kwargs: object) -> object:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(service.ws, "apply", broken)
    started = agent.post(f"{API}/plans/{plan_id}/apply")
    assert started.status_code == 202, started.text
    job_id = json_of(started)["job_id"]

    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = json_of(agent.get(f"{API}/jobs/{job_id}"))
        return job if job["state"] in ("succeeded", "failed") else None

    job = poll_until(finished, what=f"job {job_id}")
    assert job["state"] == "failed" and job["result"] is None, job
    assert set(job["error"]) == set(ErrorBody.__annotations__), job
    assert job["error"]["error"] == "InternalError"
    assert "secret detail" not in str(job)
