#!/usr/bin/env python3
"""Reads a mesa-ducklake project's catalog with DuckDB's official `ducklake` extension and prints what it sees.

Used by test/interop: the extensions are LOADed from the PyPI wheels that
`scripts/python-venv.sh scripts/interop/requirements.txt` installs (never downloaded: autoinstall and autoload are
off and the extension repository points nowhere). The catalog is ATTACHed read-only with the project's
METADATA_SCHEMA and a DATA_PATH on the mounted zone.

Environment:
  MESA_INTEROP_CONNINFO  libpq conninfo of the catalog database (may hold the password: never passed in argv)
  PGPASSWORD             the password, when the conninfo has none (libpq reads it, as for an analyst)
stdin (JSON):
  {"metadataSchema": "lake_...", "dataPath": "/mnt/zone/.../.mesa/ducklake/",
   "attach": optional ATTACH statement with {conninfo} in place of the conninfo (else one is built),
   "mode": "read" (default) | "create-foreign" (make a DuckLake catalog with the extension, for bad-input tests)
           | "golden" (the extension rewrites our history into its own lake "goldenSchema" at "goldenDataPath"),
   "asOf": [{"path": "/zone/p/x", "version": 7} | {"path": ..., "timestamp": "2026-...Z"}, optional "validAt": iso],
   "queries": [{"name": "...", "sql": "SELECT ... FROM lake.avu_changes ..."}]}
stdout (JSON):
  {"duckdb": version, "extensions": [...], "rows": [...], "snapshots": [...], "asOf": [[avu, ...], ...],
   "queries": {"name": {"columns": [...], "rows": [[...], ...]}}, "timings": {...}}
Times are epoch microseconds (exact); text is returned exactly as stored.
"""
import atexit
import datetime
import importlib.util
import json
import os
import pathlib
import re
import shutil
import sys
import tempfile
import time

import duckdb


def extension_file(package: str, name: str) -> str:
    """The extension binary shipped in a `duckdb-extension-*` wheel, for exactly this DuckDB version."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"python package {package} is not installed (run scripts/python-venv.sh scripts/interop/requirements.txt)")
    base = pathlib.Path(list(spec.submodule_search_locations)[0])
    want = base / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not want.is_file():
        found = sorted(str(p.relative_to(base)) for p in base.glob("extensions/*/*.duckdb_extension"))
        raise SystemExit(f"{package} has no {want.relative_to(base)} for duckdb {duckdb.__version__} (has {found})")
    return str(want)


def sql_text(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


# The effective-AVU rule of mesa-ducklake: per (attribute, value, unit) of a path, the latest change by
# (valid time, snapshot, position in the batch) wins; the AVU is in effect if that change is an add.
EFFECTIVE = """
SELECT attribute, value, unit, actor, epoch_us(ts) AS ts_us, snapshot_id, source, via_ticket, rule_invocation, op
FROM lake.avu_changes AT ({at})
WHERE irods_path = $path {valid}
QUALIFY row_number() OVER (PARTITION BY attribute, value, unit ORDER BY ts DESC, snapshot_id DESC, change_seq DESC) = 1
ORDER BY attribute, value, unit
"""


def secrets_of(conninfo: str) -> list:
    """The conninfo itself and its password value (quoted or not), to scrub from error messages."""
    found = [conninfo] if conninfo else []
    m = re.search(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", conninfo)
    if m:
        raw = m.group(1)
        found.append(raw)
        if raw.startswith("'"):
            found.append(re.sub(r"\\(.)", r"\1", raw[1:-1]))
    return [s for s in found if s]


def jsonable(v):
    if isinstance(v, datetime.datetime):
        return v.isoformat()
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return v


def connect():
    """DuckDB with the postgres and ducklake extensions LOADed from the wheels; nothing may be downloaded."""
    # An empty extension directory and an unreachable repository: nothing can be fetched or picked up from a cache.
    ext_dir = tempfile.mkdtemp(prefix="mesa-interop-ext-")
    atexit.register(shutil.rmtree, ext_dir, True)
    con = duckdb.connect(config={
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "extension_directory": ext_dir,
        "custom_extension_repository": "http://127.0.0.1:9/none",
    })
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"LOAD {sql_text(extension_file('duckdb_extension_postgres_scanner', 'postgres_scanner'))}")
    con.execute(f"LOAD {sql_text(extension_file('duckdb_extension_ducklake', 'ducklake'))}")
    extensions = [
        {"name": r[0], "version": r[1], "path": r[2]}
        for r in con.execute(
            "SELECT extension_name, extension_version, install_path FROM duckdb_extensions() "
            "WHERE loaded AND extension_name IN ('ducklake', 'postgres_scanner') ORDER BY 1"
        ).fetchall()
    ]
    return con, extensions


def create_foreign(con, conninfo: str, request: dict) -> None:
    """A DuckLake catalog that is not ours, made by the extension itself (for the bad-input test)."""
    con.execute(
        f"ATTACH {sql_text('ducklake:postgres:' + conninfo)} AS foreign_lake ("
        f"METADATA_SCHEMA {sql_text(request['metadataSchema'])}, DATA_PATH {sql_text(request['dataPath'])})"
    )
    con.execute("CREATE TABLE foreign_lake.main.samples (id INTEGER, name VARCHAR)")
    con.execute("INSERT INTO foreign_lake.main.samples VALUES (1, 'not'), (2, 'ours')")
    n = con.execute("SELECT count(*) FROM foreign_lake.snapshots()").fetchone()[0]
    con.execute("DETACH foreign_lake")
    json.dump({"duckdb": duckdb.__version__, "snapshots": n}, sys.stdout)


def create_golden(con, conninfo: str, request: dict) -> None:
    """The extension writes the same history into its own lake (schema `golden`), one INSERT per snapshot of ours,
    so the suite can diff the catalog rows it writes with the ones our library writes."""
    con.execute(
        f"ATTACH {sql_text('ducklake:postgres:' + conninfo)} AS lake ("
        f"METADATA_SCHEMA {sql_text(request['metadataSchema'])}, DATA_PATH {sql_text(request['dataPath'])}, "
        "OVERRIDE_DATA_PATH true, READ_ONLY)"
    )
    con.execute(
        f"ATTACH {sql_text('ducklake:postgres:' + conninfo)} AS golden ("
        f"METADATA_SCHEMA {sql_text(request['goldenSchema'])}, DATA_PATH {sql_text(request['goldenDataPath'])}, "
        "DATA_INLINING_ROW_LIMIT 0)"
    )
    columns = con.execute(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_catalog = 'lake' AND table_name = 'avu_changes' ORDER BY ordinal_position"
    ).fetchall()
    ddl = ", ".join(f'"{c[0]}" {c[1]}' + ("" if c[2] == "YES" else " NOT NULL") for c in columns)
    con.execute(f"CREATE TABLE golden.main.avu_changes ({ddl})")
    snapshots = con.execute(
        "SELECT snapshot_id, author, commit_message FROM lake.snapshots() WHERE snapshot_id > 1 ORDER BY snapshot_id"
    ).fetchall()
    for snapshot_id, author, message in snapshots:
        con.execute("BEGIN")
        con.execute(
            "INSERT INTO golden.main.avu_changes SELECT * FROM lake.avu_changes "
            f"WHERE snapshot_id = {int(snapshot_id)} ORDER BY ts, attribute, value, unit, change_seq"
        )
        con.execute("CALL golden.set_commit_message($1, $2)", [author, message])
        con.execute("COMMIT")
    con.execute("DETACH golden")
    json.dump({"duckdb": duckdb.__version__, "snapshots": len(snapshots)}, sys.stdout)


def main() -> None:
    request = json.load(sys.stdin)
    conninfo = os.environ.get("MESA_INTEROP_CONNINFO")
    if not conninfo:
        raise SystemExit("MESA_INTEROP_CONNINFO is not set")
    timings = {}
    started = time.monotonic()
    con, extensions = connect()
    if request.get("mode") == "create-foreign":
        return create_foreign(con, conninfo, request)
    if request.get("mode") == "golden":
        return create_golden(con, conninfo, request)

    if request.get("attach"):
        # The caller's ATTACH statement (the README's), with `{conninfo}` inside its 'ducklake:postgres:...' literal.
        attach = request["attach"].replace("{conninfo}", conninfo.replace("'", "''"))
    else:
        attach = (
            f"ATTACH {sql_text('ducklake:postgres:' + conninfo)} AS lake ("
            f"METADATA_SCHEMA {sql_text(request['metadataSchema'])}, DATA_PATH {sql_text(request['dataPath'])}, "
            "OVERRIDE_DATA_PATH true, READ_ONLY)"
        )
    con.execute(attach)
    timings["attach_s"] = round(time.monotonic() - started, 3)

    t = time.monotonic()
    cols = ("snapshot_id", "change_seq", "ts_us", "irods_path", "target_type", "object_id", "attribute", "value",
            "unit", "op", "actor", "source", "via_ticket", "rule_invocation", "on_behalf_of", "project_id")
    rows = [
        dict(zip(cols, r))
        for r in con.execute(
            "SELECT snapshot_id, change_seq, epoch_us(ts), irods_path, target_type, object_id, attribute, value, unit, "
            "op, actor, source, via_ticket, rule_invocation, on_behalf_of, project_id "
            "FROM lake.avu_changes ORDER BY snapshot_id, change_seq"
        ).fetchall()
    ]
    snapshots = [
        {"snapshot_id": r[0], "time_us": r[1], "schema_version": r[2], "changes": jsonable(r[3]), "author": r[4],
         "commit_message": r[5], "commit_extra_info": r[6]}
        for r in con.execute(
            "SELECT snapshot_id, epoch_us(snapshot_time), schema_version, changes, author, commit_message, "
            "commit_extra_info FROM lake.snapshots() ORDER BY snapshot_id"
        ).fetchall()
    ]
    timings["rows_s"] = round(time.monotonic() - t, 3)

    t = time.monotonic()
    as_of = []
    for item in request.get("asOf", []):
        if "version" in item:
            at = f"VERSION => {int(item['version'])}"
        else:
            at = f"TIMESTAMP => TIMESTAMPTZ {sql_text(item['timestamp'])}"
        params = {"path": item["path"]}
        valid = ""
        if item.get("validAt") is not None:
            valid = "AND ts <= CAST($valid AS TIMESTAMPTZ)"
            params["valid"] = item["validAt"]
        result = con.execute(EFFECTIVE.format(at=at, valid=valid), params).fetchall()
        as_of.append([
            {"attribute": r[0], "value": r[1], "unit": r[2], "actor": r[3], "ts_us": r[4], "snapshot_id": r[5],
             "source": r[6], "via_ticket": r[7], "rule_invocation": r[8]}
            for r in result if r[9] == "add"
        ])
    timings["as_of_s"] = round(time.monotonic() - t, 3)

    queries = {}
    for q in request.get("queries", []):
        cur = con.execute(q["sql"])
        queries[q["name"]] = {
            "columns": [d[0] for d in cur.description],
            "rows": [jsonable(list(r)) for r in cur.fetchall()],
        }

    timings["total_s"] = round(time.monotonic() - started, 3)
    json.dump({
        "duckdb": duckdb.__version__,
        "extensions": extensions,
        "rows": rows,
        "snapshots": snapshots,
        "asOf": as_of,
        "queries": queries,
        "timings": timings,
    }, sys.stdout)


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as e:  # never echo the conninfo: it holds the password
        message = str(e)
        secrets = secrets_of(os.environ.get("MESA_INTEROP_CONNINFO", "")) + [os.environ.get("PGPASSWORD", "")]
        for secret in sorted((s for s in secrets if s), key=len, reverse=True):
            message = message.replace(secret, "***")
        print(f"{type(e).__name__}: {message}", file=sys.stderr)
        sys.exit(1)
