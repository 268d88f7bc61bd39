"""python manage.py state_views [--object NAME ...]: one reporting view per sync object
in the state database, its columns the object's schema fields (statecopy.sqlviews).

Idempotent: run it again after a schema change and each view is replaced by the
schema as it is now.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connections, transaction

from resync.models import StateRecord, SyncObject
from statecopy import sqlviews


class Command(BaseCommand):
    help = "Create or replace one SQL view per sync object in the state database (state_<object>)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--object",
            action="append",
            dest="objects",
            metavar="NAME",
            help="Only this sync object (any case); repeat for more. Default: every enabled object.",
        )

    def handle(self, *args, objects: list[str] | None = None, **options) -> None:
        chosen = self.objects_named(objects)
        connection = connections["state"]
        quote = connection.ops.quote_name
        table = StateRecord._meta.db_table
        # One transaction: on PostgreSQL a reader sees all the views old or all new.
        with transaction.atomic(using="state"), connection.cursor() as cursor:
            for obj in chosen:
                fields = [
                    sqlviews.Column(name, type_)
                    for name, type_ in obj.fields.order_by("position", "name").values_list("name", "type")
                ]
                try:
                    statements = sqlviews.view_statements(
                        connection.vendor, quote, table, obj.name, fields, obj.allows_extra
                    )
                except ValueError as e:
                    raise CommandError(str(e)) from None
                self.run(cursor, connection.vendor, obj.name, statements, quote)
                columns = ", ".join(sqlviews.view_columns(fields, obj.allows_extra))
                self.stdout.write(f"{sqlviews.view_name(obj.name)}: {columns}")

    @staticmethod
    def objects_named(names: list[str] | None) -> list[SyncObject]:
        if not names:
            return list(SyncObject.objects.enabled().order_by("name"))
        by_name = {o.name.lower(): o for o in SyncObject.objects.all()}
        unknown = [n for n in names if n.lower() not in by_name]
        if unknown:
            raise CommandError(f"No sync object named {unknown[0]!r} in the catalog.")
        return list({by_name[n.lower()].pk: by_name[n.lower()] for n in names}.values())

    @staticmethod
    def run(cursor, vendor: str, object_name: str, statements: list[str], quote) -> None:
        if vendor != "postgresql":
            for sql in statements:
                cursor.execute(sql)
            return
        try:
            # CREATE OR REPLACE keeps the view's grants and the views built on it, but
            # PostgreSQL refuses it when a column goes, moves or changes type (a field
            # removed or retyped): then drop and create, in the same transaction.
            with transaction.atomic(using="state"):
                cursor.execute(statements[0])
        except DatabaseError:
            try:
                with transaction.atomic(using="state"):
                    cursor.execute(sqlviews.drop_statement(object_name, quote))
                    cursor.execute(statements[0])
            except DatabaseError as e:
                # Most likely a view of the state's own built on this one (DROP without CASCADE).
                raise CommandError(f"Could not replace {sqlviews.view_name(object_name)}: {e}") from None
