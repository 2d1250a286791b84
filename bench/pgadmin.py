"""DROP and CREATE a benchmark's PostgreSQL database (no Flask here: `northstar bench-seed` and the
report seeder import it without the web app)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

# Never dropped, whatever a --database-url says: PostgreSQL's own and the test suite's.
ALWAYS_PROTECTED = ("postgres", "template0", "template1", "test")


def recreate_database(database_url: str, *, protected: Collection[str] = ALWAYS_PROTECTED) -> None:
    """DROP and CREATE the database through an autocommit connection to `postgres`; ValueError for
    a URL that is not PostgreSQL, names no database, or names one in `protected`."""
    url = make_url(database_url)
    name = url.database
    if not name or not url.drivername.startswith("postgresql"):
        raise ValueError(f"--database-url must be a PostgreSQL URL naming a database, got {database_url!r}")
    if name in protected:
        raise ValueError(f"refusing to drop the {name!r} database; point --database-url elsewhere")
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            quoted = conn.dialect.identifier_preparer.quote(name)
            conn.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
            conn.execute(text(f"CREATE DATABASE {quoted}"))
    finally:
        admin.dispose()
