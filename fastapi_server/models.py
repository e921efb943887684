"""Every app's models, imported so that ``Base.metadata`` (and Alembic) sees all tables."""

from fastapi_server.apps.feature_flags import models as feature_flags_models
from fastapi_server.apps.notifications import models as notifications_models
from fastapi_server.apps.projects import models as projects_models
from fastapi_server.apps.todos import models as todos_models
from fastapi_server.apps.users import models as users_models
from fastapi_server.resources.database import rate_limits as rate_limit_models
from fastapi_server.resources.database.base import Base

__all__ = [
    "Base",
    "feature_flags_models",
    "notifications_models",
    "projects_models",
    "rate_limit_models",
    "todos_models",
    "users_models",
]
