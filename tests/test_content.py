"""The content store (:mod:`airlock.content`) on the real filesystem: blobs named by their digest,
written whole or not at all, read back in chunks and checked."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock.content import CHUNK, Blob, ContentStore
from airlock.errors import InputError, IntegrityError, NotFoundError


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "content")


def leftovers(store: ContentStore) -> list[str]:
    return sorted(p.name for p in store.root.iterdir() if p.name.startswith(".tmp-"))


def test_put_names_the_blob_by_its_digest_and_reads_it_back_in_chunks(
    store: ContentStore,
) -> None:
    data = os.urandom(CHUNK) * 2 + b"tail"
    blob = store.put(iter([data[:10], data[10 : CHUNK + 7], data[CHUNK + 7 :]]))
    sha = hashlib.sha256(data).hexdigest()
    assert blob == Blob(sha, len(data))
    assert store.path(sha) == store.root / sha[:2] / sha
    assert store.path(sha).read_bytes() == data
    assert store.size(sha) == len(data)
    chunks = list(store.read(sha))
    assert b"".join(chunks) == data and max(len(c) for c in chunks) <= CHUNK
    assert store.head(sha, 5) == data[:5]
    assert store.head(sha, len(data) + 100) == data
    assert leftovers(store) == []


def test_putting_the_same_bytes_again_is_a_no_op(store: ContentStore) -> None:
    first = store.put([b"same bytes"])
    assert store.put([b"same ", b"bytes"]) == first
    assert store.path(first.sha256).read_bytes() == b"same bytes"
    assert [p.name for p in store.path(first.sha256).parent.iterdir()] == [first.sha256]
    assert leftovers(store) == []


def test_the_empty_body_is_a_blob_too(store: ContentStore) -> None:
    blob = store.put([])
    assert blob == Blob(hashlib.sha256(b"").hexdigest(), 0)
    assert list(store.read(blob.sha256)) == []


def test_a_put_that_fails_midway_leaves_nothing(store: ContentStore) -> None:
    def failing() -> Iterator[bytes]:
        yield b"some bytes"
        raise RuntimeError("the source went away")

    with pytest.raises(RuntimeError):
        store.put(failing())
    assert leftovers(store) == []
    assert [p for p in store.root.iterdir()] == []


def test_a_damaged_blob_is_refused_after_its_last_chunk(store: ContentStore) -> None:
    blob = store.put([b"the reviewed bytes"])
    path = store.path(blob.sha256)
    path.write_bytes(b"the swapped bytes!")
    with pytest.raises(IntegrityError, match="damaged"):
        list(store.read(blob.sha256))
    # Putting the right bytes again repairs it.
    assert store.put([b"the reviewed bytes"]) == blob
    assert b"".join(store.read(blob.sha256)) == b"the reviewed bytes"


def test_a_missing_blob(store: ContentStore) -> None:
    sha = hashlib.sha256(b"never stored").hexdigest()
    assert store.size(sha) is None
    with pytest.raises(NotFoundError, match="not in Airlock's content store"):
        list(store.read(sha))
    with pytest.raises(NotFoundError):
        store.head(sha, 10)


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "A" * 64, "a" * 63, "a" * 65, "", "g" * 64, "a" * 63 + "\n"]
)
def test_names_that_are_not_digests_are_refused_before_any_path_is_built(
    store: ContentStore, name: str
) -> None:
    for call in (store.path, store.size, lambda n: store.head(n, 1), lambda n: list(store.read(n))):
        with pytest.raises(InputError, match="not a SHA-256 digest"):
            call(name)
    assert not store.root.exists()
