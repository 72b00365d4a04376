/**
 * The ATTACH the CLI prints (`scripts/cli/attach.ts`): the catalog's connection without its password, in either
 * DSN form, the reader role in place of the service's user, and the data path on a mount.
 */
import { describe, expect, it } from "vitest"
import { attachStatement, catalogConninfo, dataPathOnMount, loadLines } from "../../scripts/cli/attach.js"

describe("catalogConninfo", () => {
  it("drops the password of a URL DSN, keeps host, port, database, user and options", () => {
    const c = catalogConninfo("postgresql://svc:s3cr%40t@db.example.org:6543/mesa?sslmode=require")
    expect(c).toBe("host=db.example.org port=6543 dbname=mesa user=svc sslmode=require")
    expect(c).not.toContain("s3cr")
  })

  it("drops the password of a key=value DSN (quoted or not) and quotes what needs it", () => {
    const c = catalogConninfo("host=/var/run/postgresql dbname='my lake' user=svc password='it\\'s secret' port=5432")
    expect(c).not.toContain("secret")
    expect(c).toBe("host=/var/run/postgresql dbname='my lake' user=svc port=5432")
    expect(catalogConninfo("host=h password=plain dbname=d")).toBe("host=h dbname=d")
  })

  it("puts the reader role in place of the service's user", () => {
    expect(catalogConninfo("postgresql://svc:pw@h:5432/mesa", "survey_reader")).toBe("host=h port=5432 dbname=mesa user=survey_reader")
    expect(catalogConninfo("host=h user=svc password=pw", "r1")).toBe("host=h user=r1")
  })
})

describe("the ATTACH and the data path", () => {
  it("maps the lake's iRODS path onto a mount, or refuses a lake outside the prefix", () => {
    expect(dataPathOnMount("/iplant/home/alice/s/.mesa/ducklake", "/data-store", "/")).toBe("/data-store/iplant/home/alice/s/.mesa/ducklake/")
    expect(dataPathOnMount("/iplant/home/alice/s/.mesa/ducklake", "/mnt/irods/", "/iplant/home")).toBe("/mnt/irods/alice/s/.mesa/ducklake/")
    expect(dataPathOnMount("/iplant/home/alice/s/.mesa/ducklake", "/mnt", "/other")).toBeUndefined()
    expect(dataPathOnMount("/iplant/homework/x/.mesa/ducklake", "/mnt", "/iplant/home")).toBeUndefined()
  })

  it("always carries METADATA_SCHEMA, DATA_PATH (ending in /), OVERRIDE_DATA_PATH true and READ_ONLY; quotes SQL text", () => {
    const a = attachStatement({ conninfo: "host=h dbname=d user=r", metadataSchema: "lake_1", dataPath: "/m/it's/.mesa/ducklake" })
    expect(a).toBe(
      "ATTACH 'ducklake:postgres:host=h dbname=d user=r' AS lake\n" +
        "  (METADATA_SCHEMA 'lake_1', DATA_PATH '/m/it''s/.mesa/ducklake/',\n" +
        "   OVERRIDE_DATA_PATH true, READ_ONLY);"
    )
    expect(loadLines({ duckdb: "1.5.5", postgresScanner: "/p/postgres_scanner.duckdb_extension", ducklake: "/p/ducklake.duckdb_extension" }))
      .toEqual([
        "-- offline: the extension files of the PyPI wheels, for DuckDB 1.5.5",
        "LOAD '/p/postgres_scanner.duckdb_extension';",
        "LOAD '/p/ducklake.duckdb_extension';"
      ])
    expect(loadLines(undefined).join("\n")).toContain("INSTALL postgres; INSTALL ducklake;")
  })
})
