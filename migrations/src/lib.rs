//! Database migrations for PostgreSQL and SQLite.
