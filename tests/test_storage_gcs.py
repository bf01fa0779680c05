"""The GCS backend against the storage conformance suite, on a real emulator (see gcskit)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airlock.storage.base import Storage
from airlock.storage.gcs import GcsStorage
from gcskit import Gcs, GcsPlanter
from storage_conformance import Planter, StorageConformance


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
