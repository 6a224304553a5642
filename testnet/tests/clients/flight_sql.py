"""Drives a mesh node's Flight SQL port with the real ADBC Flight SQL driver.

Usage: flight_sql.py URI TOKEN MODE SQL
  MODE execute  cursor.execute(SQL), rows as JSON lists
  MODE prepare  cursor.adbc_prepare(SQL) then cursor.execute(SQL): a prepared
                statement, rows as JSON lists
  MODE bind     cursor.execute(SQL, (1,)): a prepared statement with a parameter
  MODE tables   conn.adbc_get_objects(depth="tables") (SQL ignored): rows of
                [schema, table]
With MESH_TLS_ROOT set (a PEM file), the server's certificate is checked
against it (URI grpc+tls://...). Prints one JSON object: {"columns": [...], "rows": [[...], ...]} or
{"error": "..."}; exits 0 either way (the test reads the JSON).
"""

import json
import os
import sys

import adbc_driver_flightsql.dbapi as flight_sql
from adbc_driver_flightsql import DatabaseOptions


def main() -> None:
    uri, token, mode, sql = sys.argv[1:5]
    try:
        options = {DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"}
        root = os.environ.get("MESH_TLS_ROOT")
        if root:
            with open(root) as f:
                options[DatabaseOptions.TLS_ROOT_CERTS.value] = f.read()
        conn = flight_sql.connect(uri, db_kwargs=options)
        if mode == "tables":
            with conn:
                objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
            rows = [
                [s["db_schema_name"], t["table_name"]]
                for c in objects
                for s in c["catalog_db_schemas"] or []
                for t in s["db_schema_tables"] or []
            ]
            print(json.dumps({"columns": ["schema", "table"], "rows": sorted(rows)}))
            return
        with conn, conn.cursor() as cur:
            if mode == "execute":
                cur.execute(sql)
            elif mode == "prepare":
                cur.adbc_prepare(sql)
                cur.execute(sql)
            elif mode == "bind":
                cur.execute(sql, (1,))
            else:
                raise SystemExit(f"unknown mode {mode}")
            table = cur.fetch_arrow_table()
            rows = [list(r.values()) for r in table.to_pylist()]
            print(json.dumps({"columns": table.column_names, "rows": rows}, default=str))
    except Exception as e:  # the test asserts on the message
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))


if __name__ == "__main__":
    main()
