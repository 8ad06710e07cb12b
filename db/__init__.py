"""Postgres: the pool, the embedded server, migrations and the events channel."""
