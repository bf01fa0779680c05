"""The GCS backend against the storage conformance suite, on a real emulator (see gcskit)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airlock.paths import RelPath
from airlock.storage.base import Storage
from airlock.storage.gcs import KIND_KEY, SYMLINK_KEY, GcsStorage
from gcskit import Gcs
from storage_conformance import Planter, StorageConformance


@pytest.fixture(scope="session")
def gcs() -> Iterator[Gcs]:
    started = Gcs()
    yield started
    started.stop()


class GcsPlanter:
    """Plants what gcsfuse writes for a symlink, and the backend's stand-in for a FIFO."""

    def __init__(self, storage: GcsStorage) -> None:
        self._storage = storage

    def _plant(self, path: RelPath, metadata: dict[str, str]) -> None:
        blob = self._storage.bucket.blob(self._storage.key(path))
        blob.metadata = metadata
        blob.upload_from_string(b"")

    def symlink(self, path: RelPath, target: str) -> None:
        self._plant(path, {SYMLINK_KEY: target})

    def special(self, path: RelPath) -> None:
        self._plant(path, {KIND_KEY: "special"})


@pytest.mark.parametrize("prefix", ["", "firm/cases"])
class TestGcsStorage(StorageConformance):
    @pytest.fixture
    def storage(self, gcs: Gcs, prefix: str) -> Iterator[Storage]:
        made = GcsStorage(gcs.new_bucket(prefix), client=gcs.client())
        yield made
        made.close()

    @pytest.fixture
    def planter(self, storage: Storage) -> Planter:
        assert isinstance(storage, GcsStorage)
        return GcsPlanter(storage)
