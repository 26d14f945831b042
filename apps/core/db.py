"""Database helpers every app may use."""

from __future__ import annotations

from typing import Any

from django.db import connection


def rows_update(model: Any, objs: list[Any], fields: list[str]) -> None:
    """``bulk_update`` for hundreds of rows in one ``UPDATE ... FROM (VALUES ...)``.

    Django's ``bulk_update`` compiles a CASE per field and row, which costs more than
    the database work at the kill switch's sizes; this builds the statement directly
    (values passed as parameters, cast to each column's type).
    """
    if not objs:
        return
    opts = model._meta
    columns = [opts.get_field(name) for name in fields]
    row = "(%s::bigint, " + ", ".join(f"%s::{c.db_type(connection)}" for c in columns) + ")"
    params: list[Any] = []
    for obj in objs:
        params.append(obj.pk)
        params.extend(c.get_db_prep_save(getattr(obj, c.attname), connection) for c in columns)
    names = ", ".join(f'"{c.column}"' for c in columns)
    assignments = ", ".join(f'"{c.column}" = v."{c.column}"' for c in columns)
    sql = (
        f'UPDATE "{opts.db_table}" AS t SET {assignments} '  # noqa: S608 - names from the model
        f"FROM (VALUES {', '.join([row] * len(objs))}) AS v(id, {names}) WHERE t.id = v.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
