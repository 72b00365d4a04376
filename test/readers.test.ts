/**
 * `grantProjectReader` never takes over a role: a reader role is created by us, for one project, and recorded in
 * `mesa_ducklake.reader_roles`; any existing role that is not our reader of this very project is refused with
 * `ReaderRoleConflict` and left exactly as it was (attributes, memberships, password); a password changes only on
 * an explicit `rotate` of our own, unaltered reader; two grants of one new name never both succeed.
 */
import { expect, layer } from "@effect/vitest"
import { Context, Effect, Either, Layer, Redacted } from "effect"
import pg from "pg"
import { Catalog, layer as catalogLayer } from "../src/catalog/Catalog.js"
import type { Project } from "../src/core/domain.js"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import { change, EmbeddedPostgres, embedded, record, registerFresh } from "./support.js"

const { layer: Live } = embedded("readers")
const { layer: ServiceLive } = embedded("readers-service")

let counter = 0
const freshRole = (label: string) => `rr_${label}_${process.pid}_${++counter}`

const PW1 = "first password 1234"
const PW2 = "second password 5678"

/** The service DSN with another user and password (or the same DSN untouched). */
const dsnAs = (dsn: Redacted.Redacted<string>, user?: string, password?: string) => {
  const url = new URL(Redacted.value(dsn))
  if (user !== undefined) url.username = user
  if (password !== undefined) url.password = password
  return url.toString()
}

/**
 * Connects (a new connection, so the password is checked now) and reads one project's snapshot table: "ok" or the
 * SQLSTATE (28P01: wrong password; 42501: no privilege).
 */
const tryRead = (connectionString: string, schema?: string) =>
  Effect.promise(async () => {
    const conn = new pg.Client({ connectionString })
    try {
      await conn.connect()
    } catch (e: any) {
      return String(e.code ?? e.message)
    }
    try {
      if (schema !== undefined) await conn.query(`SELECT count(*) FROM "${schema}".ducklake_snapshot`)
      return "ok"
    } catch (e: any) {
      return String(e.code ?? e.message)
    } finally {
      await conn.end()
    }
  })

/** Log in as a role with a password and read a project: "ok", "28P01" (refused login) or "42501" (no privilege). */
const readAs = (role: string, password: string, project?: Project) =>
  Effect.flatMap(EmbeddedPostgres, (server) => tryRead(dsnAs(server.dsn, role, password), project?.metadataSchema))

/** Everything PostgreSQL holds about a role, its password hash included (the test connects as the superuser). */
const roleSnapshot = (role: string) =>
  Effect.flatMap(Catalog, (catalog) =>
    catalog.withSql((sql) =>
      sql<any>`SELECT a.oid::text, a.rolname, a.rolsuper, a.rolinherit, a.rolcreaterole, a.rolcreatedb, a.rolcanlogin,
          a.rolreplication, a.rolbypassrls, a.rolconnlimit, a.rolpassword, a.rolvaliduntil,
          ARRAY(SELECT roleid::regrole::text FROM pg_auth_members WHERE member = a.oid ORDER BY 1) AS member_of,
          ARRAY(SELECT member::regrole::text FROM pg_auth_members WHERE roleid = a.oid ORDER BY 1) AS members
        FROM pg_authid a WHERE a.rolname = ${role}`
    ).pipe(Effect.map((rows) => rows[0] as Record<string, unknown> | undefined)))

const registry = (role: string) =>
  Effect.flatMap(Catalog, (catalog) =>
    catalog.withSql((sql) =>
      sql<any>`SELECT role, role_oid::text AS role_oid, project_id::text AS project_id, rotated_at
        FROM mesa_ducklake.reader_roles WHERE role = ${role}`
    ))

/** Runs statements as the service account (the superuser here): changes made "behind our back". */
const asAdmin = (...statements: ReadonlyArray<string>) =>
  Effect.flatMap(Catalog, (catalog) =>
    catalog.withSql((sql) => Effect.forEach(statements, (s) => sql.unsafe(s), { discard: true })))

const grant = (project: Project, role: string, password: string, rotate?: boolean) =>
  Effect.flatMap(DuckLakeClient, (c) =>
    c.grantProjectReader(project.projectId, role, Redacted.make(password), rotate === undefined ? undefined : { rotate }))

/** The refusal's reason, or a description of anything else (to see it in a failed expectation). */
const refusal = (project: Project, role: string, password: string, rotate?: boolean) =>
  Effect.map(Effect.either(grant(project, role, password, rotate)), (r) =>
    Either.isRight(r) ? "granted" : r.left._tag === "ReaderRoleConflict" ? r.left.reason : `${r.left._tag}: ${r.left.message}`)

/** Every string reachable from an error (messages, stacks, causes, a driver error's context), for "never leaks". */
const strings = (value: unknown, seen = new Set<unknown>()): Array<string> => {
  if (typeof value === "string") return [value]
  if (typeof value !== "object" || value === null || seen.has(value)) return []
  seen.add(value)
  return Object.getOwnPropertyNames(value).flatMap((k) => strings((value as Record<string, unknown>)[k], seen))
}

/** A catalog of its own, connected as another login (a service account with fewer rights), for one effect. */
const withCatalogAs = <A, E>(user: string, password: string, f: (catalog: Catalog["Type"]) => Effect.Effect<A, E>) =>
  Effect.flatMap(EmbeddedPostgres, (server) =>
    Effect.scoped(Effect.gen(function*() {
      const ctx = yield* Layer.build(catalogLayer({ dsn: Redacted.make(dsnAs(server.dsn, user, password)) }))
      return yield* f(Context.get(ctx, Catalog))
    })))

const twoProjects = Effect.gen(function*() {
  const mine = yield* registerFresh("mine")
  const other = yield* registerFresh("other")
  yield* record(mine.projectId, [change(`${mine.irodsPath}/x`, "k", "v")])
  yield* record(other.projectId, [change(`${other.irodsPath}/x`, "k", "v")])
  return { mine, other }
})

layer(ServiceLive, { timeout: "120 seconds", excludeTestServices: true })("reader roles: the service account", (it) => {
  it.effect("the service account's own name is refused, its password and attributes unchanged", () =>
    Effect.gen(function*() {
      const server = yield* EmbeddedPostgres
      const { mine } = yield* twoProjects
      const service = new URL(Redacted.value(server.dsn)).username
      const before = yield* roleSnapshot(service)
      expect(before?.rolsuper).toBe(true)
      expect(yield* refusal(mine, service, PW1)).toBe("exists-not-ours")
      expect(yield* refusal(mine, service, PW1, true)).toBe("exists-not-ours")
      expect(yield* roleSnapshot(service)).toEqual(before)
      // A new connection with the service's own DSN still logs in; the proposed password does not.
      expect(yield* tryRead(dsnAs(server.dsn), mine.metadataSchema)).toBe("ok")
      expect(yield* readAs(service, PW1)).toBe("28P01")
      expect(yield* registry(service)).toEqual([])
      // PostgreSQL's pseudo-roles are names we never take either.
      expect(yield* refusal(mine, "public", PW1)).toBe("exists-not-ours")
      expect(yield* refusal(mine, "none", PW1)).toBe("exists-not-ours")
    }))
})

layer(Live, { timeout: "180 seconds", excludeTestServices: true })("reader roles", (it) => {
  it.effect("a new reader is created with safe attributes, recorded for its project, and reads only it", () =>
    Effect.gen(function*() {
      const { mine, other } = yield* twoProjects
      const role = freshRole("new")
      const granted = yield* grant(mine, role, PW1)
      expect(granted).toEqual({ role, schema: mine.metadataSchema })
      const r = yield* roleSnapshot(role)
      expect(r).toMatchObject({
        rolcanlogin: true,
        rolsuper: false,
        rolinherit: false,
        rolcreaterole: false,
        rolcreatedb: false,
        rolreplication: false,
        rolbypassrls: false,
        member_of: [],
        members: []
      })
      expect(yield* registry(role)).toEqual([{ role, role_oid: r!.oid, project_id: mine.projectId, rotated_at: null }])
      expect(yield* readAs(role, PW1, mine)).toBe("ok")
      expect(yield* readAs(role, PW1, other)).toBe("42501")
    }))

  it.effect("another project's reader name is refused: its password unchanged, and it still cannot read our project", () =>
    Effect.gen(function*() {
      const { mine, other } = yield* twoProjects
      const role = freshRole("theirs")
      yield* grant(other, role, PW1)
      const before = yield* roleSnapshot(role)
      expect(yield* refusal(mine, role, PW2)).toBe("other-project")
      expect(yield* refusal(mine, role, PW2, true)).toBe("other-project")
      expect(yield* roleSnapshot(role)).toEqual(before)
      expect(yield* readAs(role, PW2)).toBe("28P01")
      expect(yield* readAs(role, PW1, other)).toBe("ok")
      expect(yield* readAs(role, PW1, mine)).toBe("42501")
      expect((yield* registry(role)).map((x) => x.project_id)).toEqual([other.projectId])
    }))

  it.effect("a role we did not create is refused and left untouched (attributes, memberships, password)", () =>
    Effect.gen(function*() {
      const { mine } = yield* twoProjects
      const role = freshRole("foreign")
      const group = freshRole("group")
      yield* asAdmin(
        `CREATE ROLE ${group} NOLOGIN`,
        `CREATE ROLE ${role} LOGIN CREATEDB INHERIT PASSWORD '${PW1}'`,
        `GRANT ${group} TO ${role}`
      )
      const before = yield* roleSnapshot(role)
      const groupBefore = yield* roleSnapshot(group)
      for (const rotate of [undefined, false, true]) {
        expect(yield* refusal(mine, role, PW2, rotate)).toBe("exists-not-ours")
        expect(yield* refusal(mine, group, PW2, rotate)).toBe("exists-not-ours")
      }
      expect(yield* roleSnapshot(role)).toEqual(before)
      expect(yield* roleSnapshot(group)).toEqual(groupBefore)
      expect(yield* readAs(role, PW1)).toBe("ok")
      expect(yield* readAs(role, PW1, mine)).toBe("42501")
      expect(yield* registry(role)).toEqual([])
      expect(yield* registry(group)).toEqual([])
    }))

  it.effect("our reader granted again without rotate is refused and keeps its password", () =>
    Effect.gen(function*() {
      const { mine } = yield* twoProjects
      const role = freshRole("again")
      yield* grant(mine, role, PW1)
      const before = yield* roleSnapshot(role)
      expect(yield* refusal(mine, role, PW2)).toBe("exists-use-rotate")
      expect(yield* refusal(mine, role, PW1, false)).toBe("exists-use-rotate")
      expect(yield* roleSnapshot(role)).toEqual(before)
      expect(yield* readAs(role, PW1, mine)).toBe("ok")
      expect(yield* readAs(role, PW2)).toBe("28P01")
    }))

  it.effect("rotate changes our reader's password (old one refused, new one reads its project only); nothing else rotates", () =>
    Effect.gen(function*() {
      const { mine, other } = yield* twoProjects
      const never = freshRole("never")
      expect(yield* refusal(mine, never, PW1, true)).toBe("not-a-reader")
      expect(yield* roleSnapshot(never)).toBeUndefined()
      expect(yield* registry(never)).toEqual([])

      const role = freshRole("rotated")
      yield* grant(mine, role, PW1)
      const before = yield* roleSnapshot(role)
      expect(yield* grant(mine, role, PW2, true)).toEqual({ role, schema: mine.metadataSchema })
      const after = yield* roleSnapshot(role)
      expect(after?.rolpassword).not.toEqual(before?.rolpassword)
      expect({ ...after, rolpassword: null }).toEqual({ ...before, rolpassword: null })
      expect(yield* readAs(role, PW1)).toBe("28P01")
      expect(yield* readAs(role, PW2, mine)).toBe("ok")
      expect(yield* readAs(role, PW2, other)).toBe("42501")
      const [row] = yield* registry(role)
      expect(row.project_id).toBe(mine.projectId)
      expect(row.rotated_at).toBeInstanceOf(Date)
      // Our reader of this project does not rotate for another project.
      expect(yield* refusal(other, role, PW1, true)).toBe("other-project")
      expect(yield* readAs(role, PW2, mine)).toBe("ok")
    }))

  it.effect("rotate is refused for our reader once its attributes, memberships or privileges changed behind our back", () =>
    Effect.gen(function*() {
      const { mine, other } = yield* twoProjects
      const grantee = freshRole("grantee")
      yield* asAdmin(`CREATE ROLE ${grantee} NOLOGIN`)
      const changes: ReadonlyArray<(role: string) => ReadonlyArray<string>> = [
        (r) => [`ALTER ROLE ${r} CREATEDB`],
        (r) => [`ALTER ROLE ${r} SUPERUSER`],
        (r) => [`ALTER ROLE ${r} CREATEROLE`],
        (r) => [`ALTER ROLE ${r} BYPASSRLS`],
        (r) => [`ALTER ROLE ${r} INHERIT`],
        (r) => [`GRANT pg_read_all_data TO ${r}`],
        (r) => [`GRANT ${grantee} TO ${r}`],
        (r) => [`GRANT ${r} TO ${grantee}`],
        (r) => [`GRANT USAGE ON SCHEMA "${other.metadataSchema}" TO ${r}`],
        (r) => [`GRANT SELECT ON "${other.metadataSchema}".ducklake_snapshot TO ${r}`],
        (r) => [`CREATE TABLE public.${r}_owned (x int)`, `ALTER TABLE public.${r}_owned OWNER TO ${r}`]
      ]
      for (const [i, behindOurBack] of changes.entries()) {
        const role = freshRole(`changed${i}`)
        yield* grant(mine, role, PW1)
        const statements = behindOurBack(role)
        yield* asAdmin(...statements)
        const before = yield* roleSnapshot(role)
        expect([statements, yield* refusal(mine, role, PW2, true)]).toEqual([statements, "unsafe-attributes"])
        expect([statements, yield* refusal(mine, role, PW2)]).toEqual([statements, "unsafe-attributes"])
        expect(yield* roleSnapshot(role)).toEqual(before)
        expect(yield* readAs(role, PW1)).toBe("ok")
        expect(yield* readAs(role, PW2)).toBe("28P01")
        expect((yield* registry(role))[0].rotated_at).toBeNull()
      }
    }))

  it.effect("a reader dropped behind our back is not rotated, and a role made again under its name is not ours", () =>
    Effect.gen(function*() {
      const { mine } = yield* twoProjects
      const role = freshRole("dropped")
      yield* grant(mine, role, PW1)
      yield* asAdmin(`DROP OWNED BY ${role}`, `DROP ROLE ${role}`)
      expect(yield* refusal(mine, role, PW2, true)).toBe("not-a-reader")
      yield* asAdmin(`CREATE ROLE ${role} LOGIN PASSWORD '${PW1}'`)
      const before = yield* roleSnapshot(role)
      expect(yield* refusal(mine, role, PW2, true)).toBe("exists-not-ours")
      expect(yield* refusal(mine, role, PW2)).toBe("exists-not-ours")
      expect(yield* roleSnapshot(role)).toEqual(before)
      // Dropped again, the name is ours to create for this project once more.
      yield* asAdmin(`DROP ROLE ${role}`)
      yield* grant(mine, role, PW2)
      expect(yield* readAs(role, PW2, mine)).toBe("ok")
      expect((yield* registry(role))[0].role_oid).toBe((yield* roleSnapshot(role))?.oid)
    }))

  it.effect("under a service account that is not superuser, refusals and PostgreSQL's own errors never carry the password", () =>
    Effect.gen(function*() {
      const server = yield* EmbeddedPostgres
      const { mine } = yield* twoProjects
      const superuser = new URL(Redacted.value(server.dsn)).username
      const secret = "never in any error 9876"
      // May create roles, but is no superuser: it cannot alter the superuser (the old grant tried, quoting the password).
      const creator = freshRole("svc_creator")
      // Cannot create roles at all: PostgreSQL refuses the CREATE ROLE that carries the password.
      const plain = freshRole("svc_plain")
      yield* asAdmin(
        `CREATE ROLE ${creator} LOGIN NOSUPERUSER CREATEROLE INHERIT PASSWORD '${PW1}'`,
        `CREATE ROLE ${plain} LOGIN NOSUPERUSER NOCREATEROLE INHERIT PASSWORD '${PW1}'`,
        `GRANT ${superuser} TO ${creator}, ${plain}`
      )
      const before = yield* roleSnapshot(superuser)
      const takeover = yield* withCatalogAs(creator, PW1, (c) => Effect.flip(c.grantReader(mine, superuser, Redacted.make(secret))))
      expect(strings(takeover).join("\n")).not.toContain(secret)
      expect(takeover._tag === "ReaderRoleConflict" && takeover.reason).toBe("exists-not-ours")
      expect(yield* roleSnapshot(superuser)).toEqual(before)

      const role = freshRole("denied")
      const denied = yield* withCatalogAs(plain, PW1, (c) => Effect.flip(c.grantReader(mine, role, Redacted.make(secret))))
      expect(denied._tag).toBe("CatalogError")
      const text = strings(denied).join("\n")
      expect(text).toContain("permission denied to create role")
      expect(text).not.toContain(secret)
      expect(yield* roleSnapshot(role)).toBeUndefined()
      expect(yield* registry(role)).toEqual([])
    }))

  it.effect("concurrent grants of one new name: exactly one succeeds, the others are refused", () =>
    Effect.gen(function*() {
      const { mine, other } = yield* twoProjects
      for (let round = 0; round < 4; round++) {
        const role = freshRole(`race${round}`)
        const attempts = [
          { project: mine, password: `${PW1} a` },
          { project: other, password: `${PW1} b` },
          { project: mine, password: `${PW1} c` },
          { project: other, password: `${PW1} d` }
        ]
        const results = yield* Effect.all(
          attempts.map((a) => Effect.either(grant(a.project, role, a.password))),
          { concurrency: "unbounded" }
        )
        const won = results.flatMap((r, i) => (Either.isRight(r) ? [attempts[i]!] : []))
        const lost = results.flatMap((r) => (Either.isLeft(r) ? [r.left._tag] : []))
        expect(won.length).toBe(1)
        expect(lost).toEqual(["ReaderRoleConflict", "ReaderRoleConflict", "ReaderRoleConflict"])
        const winner = won[0]!
        const loser = winner.project === mine ? other : mine
        expect((yield* registry(role)).map((x) => x.project_id)).toEqual([winner.project.projectId])
        expect(yield* readAs(role, winner.password, winner.project)).toBe("ok")
        expect(yield* readAs(role, winner.password, loser)).toBe("42501")
        for (const a of attempts.filter((a) => a !== winner)) expect(yield* readAs(role, a.password)).toBe("28P01")
      }
    }))
})
