"""Django's SQLite backend, making its database file's folder on first connect.

Settings create no folder at import (importing them has no side effect); the
embedded default's DATA_DIR appears when its first database is opened.
"""

from pathlib import Path

from django.db.backends.sqlite3 import base


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict):
        name = str(conn_params["database"])
        if name != ":memory:" and not name.startswith("file:"):
            Path(name).parent.mkdir(parents=True, exist_ok=True)
        return super().get_new_connection(conn_params)
