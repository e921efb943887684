"""Shared infrastructure: the database engine and session, health endpoints."""
