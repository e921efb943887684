"""All SQL of the users app."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    String,
    Table,
    bindparam,
    case,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from fastapi_server.apps.users.models import RefreshToken, User, VerificationCode
from fastapi_server.apps.users.schemas import UserOrder
from fastapi_server.lib.pagination import PageRequest
from fastapi_server.resources.database.pages import fetch_page
from fastapi_server.resources.database.postgres import (
    detached,
    is_read_only,
    retrying_read,
    rows,
)

# Doubling stops growing here (2**20 lockouts is far past any cap), so power() never overflows.
_MAX_LOCK_EXPONENT = 20
# Bulk statements leave loaded objects alone (no implicit expiry, which would make the
# next attribute access do IO); reads use populate_existing to see their effects.
_NO_SYNC = {"synchronize_session": False}
_USER_ORDER_KEYS = {UserOrder.CREATED_ON: User.created_on, UserOrder.EMAIL: User.email}


def _email_is(email: str | BindParameter[str]) -> ColumnElement[bool]:
    """``users.email`` matches ``email`` ignoring case. The database folds both sides
    (``lower()``, as the unique index does): Python's ``str.lower`` folds more than
    PostgreSQL's under some locales (C: ASCII only)."""
    return func.lower(User.email) == func.lower(email)


# The login's lookup and the refresh-token INSERT (login and refresh), built once with
# bound parameters: building a statement is Python work on the event loop, which these
# requests did on every call.
_LOCKED_BY_EMAIL = (
    select(User, func.now())
    .where(_email_is(bindparam("email", type_=String)))
    .with_for_update(of=User)
    .execution_options(populate_existing=True)
)
_tokens = cast(Table, RefreshToken.__table__)  # Core: no ORM bookkeeping per insert
_users = cast(Table, User.__table__)
_READ_CALLER = select(*_users.c).where(_users.c.id == bindparam("id"))
_INSERT_REFRESH_TOKEN = insert(_tokens).values(
    jti=bindparam("jti"),
    user_id=bindparam("user_id"),
    family_id=bindparam("family_id"),
    expires_on=bindparam("expires_on"),
)
# The same, dropping the user's tokens that expired a day ago or more.
_INSERT_REFRESH_TOKEN_DROPPING_EXPIRED = _INSERT_REFRESH_TOKEN.add_cte(
    delete(_tokens)
    .where(
        _tokens.c.user_id == bindparam("user_id"),
        _tokens.c.expires_on < func.now() - timedelta(days=1),
    )
    .cte("expired")
)


class UsersDB:
    """Queries on the users app's tables, on the caller's session (never commits)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- users ---------------------------------------------------------------------

    async def now(self) -> datetime:
        """The database's clock (the transaction's start), the one all rows use."""
        return (await self.session.execute(select(func.now()))).scalar_one()

    async def get(self, user_id: uuid.UUID, *, for_update: bool = False) -> User | None:
        """The user, re-read from the database (statements here bypass the identity map)."""
        return await self.session.get(
            User, user_id, populate_existing=True, with_for_update=for_update
        )

    async def get_caller(self, user_id: uuid.UUID) -> User | None:
        """The user a request acts for (``get``), read on every authenticated request; in
        a read-only (GET) scope, retried on a connection the server closed (a restart).

        In a read-only scope it is one Core read (``rows``) made into a detached ``User``:
        a GET changes nothing, and the ORM's loading would cost more than the read."""
        if not is_read_only(self.session):
            return await retrying_read(self.session, lambda: self.get(user_id))
        found = await rows(self.session, _READ_CALLER, {"id": user_id})
        return detached(User, found[0]) if found else None

    async def get_by_email(self, email: str, *, for_update: bool = False) -> User | None:
        """The user whose email matches ignoring case (``_email_is``), re-read from the
        database."""
        query = select(User).where(_email_is(email))
        if for_update:
            query = query.with_for_update()
        query = query.execution_options(populate_existing=True)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def get_by_email_locked(self, email: str) -> tuple[User, datetime] | None:
        """``get_by_email(email, for_update=True)`` and ``now()``, in one round trip."""
        row = (await self.session.execute(_LOCKED_BY_EMAIL, {"email": email})).one_or_none()
        return None if row is None else (row[0], row[1])

    async def create(self, **values: Any) -> User:
        """Insert a user (``email``, names, ``hashed_password``, flags) and flush."""
        user = User(**values)
        self.session.add(user)
        await self.session.flush()
        await self.session.refresh(user)
        return user

    async def insert_unverified(
        self, *, email: str, first_name: str, last_name: str, hashed_password: str
    ) -> uuid.UUID | None:
        """Insert a new unverified user; None when the email (in any case) has one already.

        One statement on the case-insensitive unique index, so concurrent registrations
        of one email end as one row, and an existing account is never changed.
        """
        statement = (
            insert(User)
            .values(
                email=email,
                first_name=first_name,
                last_name=last_name,
                hashed_password=hashed_password,
            )
            .on_conflict_do_nothing(index_elements=[func.lower(User.email)])
            .returning(User.id)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def save(self, user: User, **values: Any) -> User:
        """Set attributes on ``user`` and flush."""
        for name, value in values.items():
            setattr(user, name, value)
        await self.session.flush()
        return user

    async def refresh(self, user: User) -> User:
        """Reload ``user`` (columns set by triggers or other statements)."""
        await self.session.refresh(user)
        return user

    async def bump_token_version(self, user: User) -> int:
        """``token_version + 1`` in SQL, so a concurrent bump is never lost; ``user`` gets
        the new value."""
        statement = (
            update(User)
            .where(User.id == user.id)
            .values(token_version=User.token_version + 1)
            .returning(User.token_version)
        )
        version = int(
            (await self.session.execute(statement, execution_options=_NO_SYNC)).scalar_one()
        )
        set_committed_value(user, "token_version", version)
        return version

    async def record_login_failure(
        self,
        user_id: uuid.UUID,
        *,
        max_failures: int,
        lockout_seconds: int,
        cap_seconds: int,
        decay_seconds: int,
    ) -> tuple[int, datetime | None]:
        """Count a failure atomically; lock from ``max_failures`` on, doubling, capped.

        A failure more than ``decay_seconds`` after the previous one counts from 1 again.
        """
        decayed = or_(
            User.login_failed_on.is_(None),
            User.login_failed_on < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, decay_seconds),
        )
        failures = case((decayed, 1), else_=User.login_failed_count + 1)
        exponent = func.least(failures - max_failures, _MAX_LOCK_EXPONENT)
        seconds = func.least(lockout_seconds * func.power(2, exponent), cap_seconds)
        lock_until = func.now() + func.make_interval(0, 0, 0, 0, 0, 0, seconds)
        statement = (
            update(User)
            .where(User.id == user_id)
            .values(
                login_failed_count=failures,
                login_failed_on=func.now(),
                locked_until=case((failures >= max_failures, lock_until), else_=None),
            )
            .returning(User.login_failed_count, User.locked_until)
        )
        row = (await self.session.execute(statement, execution_options=_NO_SYNC)).one()
        return int(row[0]), row[1]

    async def count(self) -> int:
        return int(
            (await self.session.execute(select(func.count()).select_from(User))).scalar_one()
        )

    async def count_locked(self) -> int:
        """Accounts whose logins are refused right now (too many failed attempts)."""
        statement = select(func.count()).select_from(User).where(User.locked_until > func.now())
        return int((await self.session.execute(statement)).scalar_one())

    async def page(self, request: PageRequest[UserOrder]) -> tuple[Sequence[User], int]:
        """One page of every account in the requested order, and how many there are."""
        keys = (_USER_ORDER_KEYS[request.order_by], User.id)
        return await fetch_page(self.session, select(User), request, keys)

    # --- refresh tokens --------------------------------------------------------------

    async def add_refresh_token(
        self,
        *,
        jti: uuid.UUID,
        user_id: uuid.UUID,
        family_id: uuid.UUID,
        expires_on: datetime,
        drop_expired: bool = False,
    ) -> None:
        """Insert a refresh token's row. With ``drop_expired``, the same statement does the
        housekeeping (one round trip): it drops the user's tokens that expired a day ago
        or more. Only a caller holding the user's row lock may ask for it: the DELETE
        locks those rows before the INSERT's foreign key check waits for the user's row,
        so two requests doing it at once could deadlock."""
        values = {"jti": jti, "user_id": user_id, "family_id": family_id, "expires_on": expires_on}
        if drop_expired:
            await self.session.execute(_INSERT_REFRESH_TOKEN_DROPPING_EXPIRED, values)
        else:
            await self.session.execute(_INSERT_REFRESH_TOKEN, values)

    async def refresh_token_for_update(self, jti: uuid.UUID) -> RefreshToken | None:
        """The token's row, locked so two concurrent refreshes cannot both rotate it."""
        query = select(RefreshToken).where(RefreshToken.jti == jti).with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def mark_refresh_token_used(self, token: RefreshToken, when: datetime) -> None:
        token.used_on = when
        await self.session.flush()

    async def revoke_refresh_family(self, family_id: uuid.UUID) -> None:
        await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_on.is_(None))
            .values(revoked_on=func.now()),
            execution_options=_NO_SYNC,
        )

    async def revoke_user_refresh_tokens(self, user_id: uuid.UUID) -> int:
        """Revoke every live refresh token of the user; how many were live."""
        result = await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user_id, RefreshToken.revoked_on.is_(None))
            .values(revoked_on=func.now())
            .returning(RefreshToken.jti),
            execution_options=_NO_SYNC,
        )
        return len(result.all())

    # --- verification codes ----------------------------------------------------------

    async def add_verification_code(
        self,
        *,
        code_id: uuid.UUID,
        user_id: uuid.UUID,
        code_hmac: str,
        password_fingerprint: str,
        expires_on: datetime,
        keeps_password: bool = True,
    ) -> None:
        self.session.add(
            VerificationCode(
                id=code_id,
                user_id=user_id,
                code_hmac=code_hmac,
                password_fingerprint=password_fingerprint,
                expires_on=expires_on,
                keeps_password=keeps_password,
            )
        )
        await self.session.flush()

    async def codes_requested_since(self, user_id: uuid.UUID, since: datetime) -> int:
        query = select(func.count()).where(
            VerificationCode.user_id == user_id, VerificationCode.created_on >= since
        )
        return int((await self.session.execute(query)).scalar_one())

    async def supersede_open_codes(self, user_id: uuid.UUID) -> None:
        """Close the user's unused codes: only the newest code works."""
        await self.session.execute(
            update(VerificationCode)
            .where(VerificationCode.user_id == user_id, VerificationCode.used_on.is_(None))
            .values(used_on=func.now()),
            execution_options=_NO_SYNC,
        )

    async def delete_old_codes(self, user_id: uuid.UUID, before: datetime) -> None:
        """Housekeeping: drop the user's codes created before ``before``."""
        await self.session.execute(
            delete(VerificationCode).where(
                VerificationCode.user_id == user_id, VerificationCode.created_on < before
            ),
            execution_options=_NO_SYNC,
        )

    async def verification_code_for_update(self, code_id: uuid.UUID) -> VerificationCode | None:
        query = select(VerificationCode).where(VerificationCode.id == code_id).with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def save_code(self, code: VerificationCode, **values: Any) -> None:
        for name, value in values.items():
            setattr(code, name, value)
        await self.session.flush()
