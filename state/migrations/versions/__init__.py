"""One module a revision; alembic loads them by path, not by import."""
