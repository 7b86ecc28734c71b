"""The store contract suite on PostgreSQL (each test in a fresh schema of its own)."""

import pytest

from ampel_core.sql_store_contract import SqlStoreContract
from ampel_postgres.testing import postgres_store_url, postgres_url  # noqa: F401 - fixtures


class TestPostgresStore(SqlStoreContract):
    @pytest.fixture
    def store_url(self, postgres_store_url: str) -> str:  # noqa: F811
        return postgres_store_url

