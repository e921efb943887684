"""Who may do what with feature flags (FastAPI dependencies used by ``api``).

Reading flags (list, one flag, evaluate) is open to anyone; ``evaluate`` uses the
caller's identity when a Bearer token is given, read from the token alone so that
evaluation stays free of database work (a token revoked a moment ago still sees its
own flag values until it expires; it can change nothing). Changing flags and reading their history
is for superusers (401 without a valid token, 403 ``NOT_SUPERUSER`` otherwise).
"""

from __future__ import annotations

from fastapi_server.apps.users.entitlements import OPTIONAL_BEARER, Superuser, caller_or_none

FlagAdmin = Superuser
flag_reader = caller_or_none  # called by the evaluate endpoint itself, not as a dependency
FLAG_READER_SECURITY = OPTIONAL_BEARER

__all__ = ["FLAG_READER_SECURITY", "FlagAdmin", "flag_reader"]
