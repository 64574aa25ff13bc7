"""The SQL backends: SQLite (built in) and PostgreSQL (the ``postgres`` extra), on one shared base."""
