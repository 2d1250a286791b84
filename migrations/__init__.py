"""Alembic migrations, shipped as a package so an installed copy can upgrade itself."""
