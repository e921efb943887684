"""Generic helpers. Nothing here imports from ``fastapi_server.apps``."""
