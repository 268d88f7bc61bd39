"""Django's PostgreSQL backend, with PostgreSQL's JIT turned off on every connection.

StateSync's queries are short, and PostgreSQL's estimates for its small tables
(users, rights, alerts) overshoot jit_above_cost: a query of a millisecond paid
about 25 ms of compiling (measured: the alert recipients of a state request, once
per district, and per-step queries; issue 16). A SET on the new connection rather
than a startup `options` parameter: PgBouncer, which the README recommends in
session mode, refuses that parameter.
"""

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict):
        connection = super().get_new_connection(conn_params)
        with connection.cursor() as cursor:
            cursor.execute("SET jit = off")
        if not connection.autocommit:
            connection.commit()  # a SET rolled back with its transaction would be undone
        return connection
