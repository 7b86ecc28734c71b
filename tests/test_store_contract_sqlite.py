"""The store contract suite on the embedded SQLite backend (a fresh file per test)."""

from pathlib import Path

import pytest

from ampel_core.store_contract import StoreContract


class TestSqliteStore(StoreContract):
    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path}/store.db"
