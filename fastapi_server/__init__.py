"""FastAPI platform: one app per feature (users, feature flags, notifications)."""
