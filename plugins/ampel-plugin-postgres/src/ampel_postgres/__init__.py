"""AMPEL's PostgreSQL store: ``postgresql://user@host:port/database`` (see `ampel_postgres.store`)."""
