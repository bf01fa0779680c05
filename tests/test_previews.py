"""File previews (issue 12): what a file is and what of it is shown, decoded in a bounded child
process; and the review page's previews of each side of each change through the real service,
with the headers that keep a crafted file from being anything but looked at."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airlock import previews
from airlock.errors import PreviewError
from airlock.tokens import Role
from previewkit import bomb_png, docx_bytes, pdf_bytes, picture_bytes
from servicekit import DEMO_CASE, Service, running_service, signed_in

SCOPE = f"projects/{DEMO_CASE}"
INCIDENT = pdf_bytes(["FreshWay incident report", "Witness statement", "Photos", "Diagram"])
SCRIPT = b"<html><script>alert(document.cookie)</script></html>"


# --- what a file is ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "kind", "mime"),
    [
        ("report.pdf", INCIDENT, "pdf", "application/pdf"),
        ("photo.jpg", picture_bytes("JPEG"), "image", "image/jpeg"),
        ("photo.png", picture_bytes("PNG"), "image", "image/png"),
        ("IMG_0001.HEIC", picture_bytes("HEIF"), "image", "image/heic"),
        (
            "letter.docx",
            docx_bytes(["Dear Sir"]),
            "docx",
            previews.sniff("a.docx", b"PK\x03\x04")[1],
        ),
        ("notes.md", b"# Call with client\n", "text", "text/markdown"),
        ("notes.txt", "Über 2 pages".encode(), "text", "text/plain"),
        ("tool.exe", b"MZ\x90\x00\x03\x00\x00\x00", "other", "application/octet-stream"),
        # The name says PDF; the bytes say a web page: it is shown as the text it is.
        ("invoice.pdf", SCRIPT, "text", "text/plain"),
        ("zip-not-docx.zip", b"PK\x03\x04rest", "other", "application/octet-stream"),
    ],
)
def test_a_file_is_what_its_first_bytes_say(name: str, data: bytes, kind: str, mime: str) -> None:
    assert previews.sniff(name, data[:64]) == (kind, mime)


def test_each_kind_is_looked_inside() -> None:
    pdf = previews.inspect("report.pdf", INCIDENT, len(INCIDENT))
    assert (pdf.kind, pdf.pages, pdf.problem) == ("pdf", 4, "")
    heic = picture_bytes("HEIF", (320, 200))
    picture = previews.inspect("IMG.HEIC", heic, len(heic))
    assert (picture.width, picture.height) == (320, 200)
    letter = docx_bytes(["Dear Sir,", "We represent Ms Sitgraves."])
    assert previews.inspect("l.docx", letter, len(letter)).text == (
        "Dear Sir,\nWe represent Ms Sitgraves."
    )
    page, mime = previews.render("pdf", INCIDENT, 2)
    assert mime == "image/png" and page.startswith(b"\x89PNG")
    drawn, mime = previews.render("image", heic)
    assert mime == "image/jpeg" and drawn.startswith(b"\xff\xd8")


def test_text_is_cut_at_the_limit_and_a_part_read_says_so() -> None:
    text = ("line of the chronology\n" * 20_000).encode()
    shown = previews.inspect("chronology.txt", text, len(text))
    assert shown.more_text and len(shown.text or "") == previews.TEXT_CHARS
    head = INCIDENT[:100]
    part = previews.inspect("report.pdf", head, previews.MAX_BYTES + 1)
    assert "too large to preview" in part.problem


def test_a_decompression_bomb_is_refused_before_it_is_decoded() -> None:
    bomb = bomb_png()
    shown = previews.inspect("bomb.png", bomb, len(bomb))
    assert "decompression bomb" in shown.problem
    with pytest.raises(PreviewError, match="cannot be previewed"):
        previews.render("image", bomb)


def test_a_damaged_file_is_a_preview_error_not_a_crash() -> None:
    broken = INCIDENT[:300]
    shown = previews.inspect("report.pdf", broken, len(broken))
    assert shown.kind == "pdf" and shown.problem.startswith("it cannot be previewed")
    with pytest.raises(PreviewError) as raised:
        previews.render("pdf", INCIDENT, 9)
    assert "no page 9" in raised.value.message and raised.value.hint


def test_a_decoder_over_its_time_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    # A PDF that takes PDFium long enough is hard to make on purpose; the limit is the same for
    # any decoder, so a real decoder is given less time than it needs to start.
    monkeypatch.setattr(previews, "TIME_LIMIT", 0.01)
    data = pdf_bytes(["slow"])
    with pytest.raises(PreviewError, match="longer than"):
        previews.render("pdf", data + b"%" + b"x" * 10, 1)


def test_the_decoder_cannot_write_a_file(tmp_path: Any) -> None:
    # RLIMIT_FSIZE 0, set by the child on itself before it reads the file: the one way a
    # decoder's bug could leave something behind.
    import subprocess
    import sys

    target = tmp_path / "written"
    script = (
        "from airlock import previews; previews._limits(); import os; "
        f"os.write(os.open({str(target)!r}, 65), b'x')"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, check=False)
    assert done.returncode != 0 and b"File too large" in done.stderr
    assert not target.exists() or target.stat().st_size == 0


# --- the review page's previews ----------------------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("previews") / "ws") as running:
        case = running.ws.root / SCOPE
        (case / "FreshWay incident report.pdf").write_bytes(INCIDENT)
        (case / "knee photo.jpg").write_bytes(picture_bytes("JPEG"))
        (case / "IMG_0002.HEIC").write_bytes(picture_bytes("HEIF"))
        (case / "letter to adjuster.docx").write_bytes(docx_bytes(["Dear adjuster,"]))
        (case / "invoice.pdf").write_bytes(SCRIPT)
        (case / "tool.exe").write_bytes(b"MZ\x90\x00" * 10)
        submit(
            running,
            "review",
            [
                {"op": "mkdir", "path": "Photos"},
                {"op": "move", "source": "knee photo.jpg", "destination": "Photos/knee.jpg"},
                {"op": "move", "source": "IMG_0002.HEIC", "destination": "Photos/IMG_0002.HEIC"},
                {"op": "delete", "path": "FreshWay incident report.pdf"},
                {"op": "move", "source": "invoice.pdf", "destination": "invoice (web page).pdf"},
                {"op": "delete", "path": "tool.exe"},
                {
                    "op": "write",
                    "path": "notes from call w client.txt",
                    "text": "Client called: knee still hurts.\n",
                    "overwrite": True,
                },
                {"op": "write", "path": "summary.md", "text": "# Summary\n\nThe knee.\n"},
                {
                    "op": "write",
                    "path": "letter v2.docx",
                    "base64": base64.b64encode(docx_bytes(["Dear adjuster, again"])).decode(),
                },
            ],
        )
        yield running


def submit(service: Service, plan_id: str, operations: list[dict[str, Any]]) -> None:
    body = {"scope": SCOPE, "description": "t", "author": "agent", "operations": operations}
    response = service.client(Role.AGENT).post(
        "/api/v1/plans", params={"plan_id": plan_id}, json=body
    )
    assert response.status_code == 201 and response.json()["status"] == "validated", response.text


def file_links(client: httpx.Client, plan_id: str) -> dict[str, str]:
    """The preview links of the plan's page, by the name each is shown as (a side-link: by
    "old:" + the row's name)."""
    page = client.get(f"/ui/plans/{plan_id}").text
    links = {}
    for href, text in re.findall(r'<a class="file-link" href="([^"]+)"[^>]*>([^<]*)</a>', page):
        links[html.unescape(text)] = href
    for href in re.findall(r'class="side-link" href="([^"]+)"', page):
        links["old:" + href.rsplit("/", 2)[1]] = href
    return links


def test_every_file_of_a_change_opens_in_its_preview(service: Service) -> None:
    client = signed_in(service)
    links = file_links(client, "review")
    expected = {
        "FreshWay incident report.pdf": ("PDF, 4 pages", "before"),
        "knee photo.jpg": ("Picture, 640 × 480 px", "before"),
        "Photos/knee.jpg": ("Picture, 640 × 480 px", "after"),
        "Photos/IMG_0002.HEIC": ("Picture, 640 × 480 px", "after"),
        "tool.exe": ("File", "before"),
        "notes from call w client.txt": ("Text", "after"),
        "summary.md": ("Text", "after"),
        "letter v2.docx": ("Word document", "after"),
    }
    for name, (kind, side) in expected.items():
        assert links[name].endswith("/" + side), (name, links[name])
        page = client.get(links[name])
        assert page.status_code == 200, (name, page.text)
        assert re.search(r'data-testid="preview-kind">([^<]*)<', page.text)[1] == kind  # type: ignore[index]
        assert page.headers["x-content-type-options"] == "nosniff"
        assert "script-src 'self'" in page.headers["content-security-policy"]
    pdf = client.get(links["FreshWay incident report.pdf"]).text
    shown = re.findall(r'<img src="([^"]+)"[^>]*data-testid="pdf-page"', pdf)
    assert len(shown) == previews.PAGES_AT_ONCE and "Show the other 1 page" in pdf
    all_pages = client.get(links["FreshWay incident report.pdf"] + "?pages=all").text
    assert all_pages.count('data-testid="pdf-page"') == 4
    image = client.get(shown[0])
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert image.headers["content-type"] == "image/png"
    assert "sandbox" in image.headers["content-security-policy"]
    letter = client.get(links["letter v2.docx"]).text
    assert "Dear adjuster, again" in letter
    old_notes = client.get(links["old:" + links["notes from call w client.txt"].rsplit("/", 2)[1]])
    assert old_notes.status_code == 200 and "Client called" not in old_notes.text


def test_a_web_page_named_pdf_is_shown_as_escaped_text_and_downloads_as_bytes(
    service: Service,
) -> None:
    client = signed_in(service)
    link = file_links(client, "review")["invoice.pdf"]
    page = client.get(link)
    assert "&lt;script&gt;alert(document.cookie)&lt;/script&gt;" in page.text
    assert "<script>alert" not in page.text
    download = client.get(link + "/download")
    assert download.content == SCRIPT
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"] == "attachment; filename*=UTF-8''invoice.pdf"
    assert "sandbox" in download.headers["content-security-policy"]
    assert download.headers["x-content-type-options"] == "nosniff"


def test_an_applied_delete_is_previewed_from_the_copy_kept_aside(service: Service) -> None:
    kept = pdf_bytes(["Only copy of the intake form"])
    (service.ws.root / SCOPE / "intake.pdf").write_bytes(kept)
    submit(service, "applied", [{"op": "delete", "path": "intake.pdf"}])
    approver = service.client(Role.APPROVER)
    validation = approver.get("/api/v1/plans/applied").json()["validation_id"]
    approved = approver.post(
        "/api/v1/plans/applied/approve", json={"validation_id": validation, "comment": "ok"}
    )
    assert approved.status_code == 200, approved.text
    applied = approver.post("/api/v1/plans/applied/apply", params={"wait": "true"})
    assert applied.status_code in (200, 202), applied.text
    client = signed_in(service)
    for _attempt in range(100):
        if approver.get("/api/v1/plans/applied").json()["status"] == "applied":
            break
        import time

        time.sleep(0.05)
    assert not (service.ws.root / SCOPE / "intake.pdf").exists()
    link = file_links(client, "applied")["intake.pdf"]
    page = client.get(link).text
    assert "the copy the apply kept aside" in page and "PDF, 1 page" in page
    assert client.get(link + "/download").content == kept


def test_a_file_changed_since_the_check_is_flagged(service: Service) -> None:
    path = service.ws.root / SCOPE / "changing.txt"
    path.write_text("as checked\n")
    submit(service, "changing", [{"op": "delete", "path": "changing.txt"}])
    path.write_text("changed after the check\n")
    client = signed_in(service)
    page = client.get(file_links(client, "changing")["changing.txt"]).text
    assert 'data-testid="changed-since"' in page and "changed after the check" in page


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/ui/plans/review/files/0/before", 404),
        ("/ui/plans/review/files/999/before", 404),
        ("/ui/plans/review/files/1/before", 400),  # change 1 is the folder it makes
        ("/ui/plans/review/files/4/sideways", 400),
        ("/ui/plans/nope/files/1/before", 404),
        ("/ui/plans/review/files/x/before", 422),
        ("/ui/plans/review/files/4/before/pages/99", 422),
    ],
)
def test_a_bad_preview_address_is_a_clear_refusal(service: Service, path: str, status: int) -> None:
    client = signed_in(service)
    response = client.get(path)
    assert response.status_code == status, response.text
    assert response.status_code != 500


def test_previews_need_a_signed_in_reviewer(service: Service) -> None:
    anonymous = service.client()
    for tail in ("", "/download", "/pages/1"):
        response = anonymous.get("/ui/plans/review/files/4/before" + tail)
        assert response.status_code == 303 and "/ui/sign-in" in response.headers["location"]


def test_while_an_apply_runs_before_is_the_folder_as_it_was(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page of a plan whose apply is half done draws "before" from the scope as the apply
    found it, not from the half-changed folder (the apply is held after its first move)."""
    import threading

    case = service.ws.root / SCOPE
    for name in ("a.txt", "b.txt"):
        (case / name).write_text(name)
    submit(
        service,
        "midway",
        [
            {"op": "mkdir", "path": "Sorted"},
            {"op": "move", "source": "a.txt", "destination": "Sorted/a.txt"},
            {"op": "move", "source": "b.txt", "destination": "Sorted/b.txt"},
        ],
    )
    storage = service.ws.storage
    rename = storage.rename
    first_moved, release = threading.Event(), threading.Event()

    def held_rename(source: Any, destination: Any) -> None:
        rename(source, destination)
        if source[-1:] == ("a.txt",):
            first_moved.set()
            assert release.wait(30)

    monkeypatch.setattr(storage, "rename", held_rename)
    client = signed_in(service)
    approver = service.client(Role.APPROVER)
    validation = approver.get("/api/v1/plans/midway").json()["validation_id"]
    assert (
        approver.post(
            "/api/v1/plans/midway/approve", json={"validation_id": validation}
        ).status_code
        == 200
    )
    try:
        assert approver.post("/api/v1/plans/midway/apply").status_code == 202
        assert first_moved.wait(30)
        assert (case / "Sorted/a.txt").exists() and (case / "b.txt").exists()  # half done
        page = client.get("/ui/plans/midway").text
        before = page.split('data-testid="tree-before"')[1].split('data-testid="tree-after"')[0]
        assert 'data-testid="trees-between"' in page
        assert "a.txt" in before and 't-name">Sorted/' not in before  # the folder as it was
        after = page.split('data-testid="tree-after"')[1]
        assert 't-name">Sorted/' in after
    finally:
        release.set()
    for _attempt in range(200):
        if approver.get("/api/v1/plans/midway").json()["status"] == "applied":
            break
        threading.Event().wait(0.05)
    assert (case / "Sorted/b.txt").exists()


def test_the_decoder_runs_as_nobody_only_where_nobody_can_reach_python(tmp_path: Any) -> None:
    # A Python under a folder only its owner may enter (pyenv's /root/.pyenv) cannot be run by
    # nobody: the decoder then keeps the service's account rather than failing every preview.
    hidden = tmp_path / "private"
    hidden.mkdir(mode=0o700)
    (hidden / "python").write_text("")
    assert not previews._others_may_run(str(hidden / "python"))
