"""The in-memory backend against the storage conformance suite."""

from __future__ import annotations

import pytest

from airlock.paths import RelPath
from airlock.storage.base import Storage
from airlock.storage.memory import MemoryStorage
from storage_conformance import Planter, StorageConformance


class MemoryPlanter:
    def __init__(self, storage: MemoryStorage) -> None:
        self._storage = storage

    def symlink(self, path: RelPath, target: str) -> None:
        self._storage.add_symlink(path, target)

    def special(self, path: RelPath) -> None:
        self._storage.add_special(path)


class TestMemoryStorage(StorageConformance):
    @pytest.fixture
    def storage(self) -> Storage:
        return MemoryStorage()

    @pytest.fixture
    def planter(self, storage: Storage) -> Planter:
        assert isinstance(storage, MemoryStorage)
        return MemoryPlanter(storage)
