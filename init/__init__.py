"""Bootstrap tooling: the local PostgreSQL server, database creation, migrations and seeds."""
