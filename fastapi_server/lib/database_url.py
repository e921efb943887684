"""Conversions between the URL forms PostgreSQL tools accept."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg", "postgresql+psycopg")


class InvalidDatabaseURL(ValueError):
    """The URL is not a PostgreSQL URL."""


def _split(url: str) -> tuple[str, str, str, str, str]:
    parts = urlsplit(url.strip())
    if parts.scheme not in _SCHEMES or not parts.path.strip("/"):
        raise InvalidDatabaseURL(
            "DATABASE_URL must look like postgresql://user:password@host:5432/database "
            f"(postgresql+asyncpg:// is accepted too); got {redact(url)!r}"
        )
    return parts.scheme, parts.netloc, parts.path, parts.query, parts.fragment


def to_asyncpg_dsn(url: str) -> str:
    """The ``postgresql://`` form, for asyncpg and libpq tools such as psql."""
    _, netloc, path, query, fragment = _split(url)
    return urlunsplit(("postgresql", netloc, path, query, fragment))


def to_sqlalchemy_url(url: str) -> str:
    """The ``postgresql+asyncpg://`` form, for SQLAlchemy's async engine."""
    _, netloc, path, query, fragment = _split(url)
    return urlunsplit(("postgresql+asyncpg", netloc, path, query, fragment))


def database_name(url: str) -> str:
    """The database part of the URL."""
    return _split(url)[2].strip("/")


def with_database(url: str, database: str) -> str:
    """The same server and credentials, another database (``postgresql://`` form)."""
    _, netloc, _, query, fragment = _split(url)
    return urlunsplit(("postgresql", netloc, f"/{database}", query, fragment))


def redact(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
