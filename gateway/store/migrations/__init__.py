"""Alembic migrations for the state store; run them with ``dlr-gateway db upgrade``."""
