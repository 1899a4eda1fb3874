"""The Alembic migrations of the foureyes schema; `foureyes.store.migrate` runs them."""
