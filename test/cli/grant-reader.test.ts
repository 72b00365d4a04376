/**
 * `mesa-ducklake project grant-reader` as a user runs it: a role is created once; granting it again is refused
 * (exit 1, `ReaderRoleConflict`, pointing at `--rotate`) and keeps its password; `--rotate` changes the password of
 * our own reader and of nothing else. The password is never printed.
 */
import pg from "pg"
import { describe, expect, it } from "vitest"
import { cliFixture, runCli, stderrJson } from "./support.js"

const cli = cliFixture("grant-reader", "gr")
const { env, register } = cli

const PW1 = "first reader secret 1234"
const PW2 = "second reader secret 5678"

/** A new connection as `user` (the service's own when omitted): "ok" or the SQLSTATE (28P01: wrong password). */
const login = async (user?: string, password?: string): Promise<string> => {
  const url = new URL(cli.dsn)
  if (user !== undefined) url.username = user
  if (password !== undefined) url.password = password
  const conn = new pg.Client({ connectionString: url.toString() })
  try {
    await conn.connect()
    await conn.end()
    return "ok"
  } catch (e: any) {
    return String(e.code ?? e.message)
  }
}

const grantReader = (project: string, role: string, password: string, ...flags: Array<string>) =>
  runCli(["project", "grant-reader", "--role", role, "--json", ...flags, project], {
    env: { ...env, MESA_DUCKLAKE_READER_PASSWORD: password }
  })

describe("project grant-reader", () => {
  it("refuses to grant an existing reader again (exit 1, says --rotate, password kept); --rotate changes it", async () => {
    const p = await register()
    const role = `cli_rot_${process.pid}`
    const first = await grantReader(p.project_id, role, PW1)
    expect(first.code, first.stderr).toBe(0)
    expect(JSON.parse(first.stdout)).toMatchObject({ role, rotated: false })

    const again = await grantReader(p.project_id, role, PW2)
    expect(again.code, again.stderr).toBe(1)
    const err = stderrJson(again)
    expect(err.code).toBe("ReaderRoleConflict")
    expect(err.message).toContain("--rotate")
    expect(await login(role, PW1)).toBe("ok")
    expect(await login(role, PW2)).toBe("28P01")

    const rotated = await grantReader(p.project_id, role, PW2, "--rotate")
    expect(rotated.code, rotated.stderr).toBe(0)
    expect(JSON.parse(rotated.stdout)).toMatchObject({ role, rotated: true, project_id: p.project_id })
    expect(await login(role, PW1)).toBe("28P01")
    expect(await login(role, PW2)).toBe("ok")

    const human = await grantReader(p.project_id, role, PW1, "--rotate")
    expect(human.code, human.stderr).toBe(0)
    for (const r of [first, again, rotated, human]) {
      expect(r.stdout + r.stderr).not.toContain(PW1)
      expect(r.stdout + r.stderr).not.toContain(PW2)
    }
  })

  it("--rotate of a role that is no reader, the service's own role and another project's reader exit 1 and change nothing", async () => {
    const mine = await register()
    const other = await grantReader((await register()).project_id, `cli_other_${process.pid}`, PW1)
    expect(other.code, other.stderr).toBe(0)

    const none = await grantReader(mine.project_id, `cli_none_${process.pid}`, PW1, "--rotate")
    expect(none.code).toBe(1)
    expect(stderrJson(none)).toMatchObject({ code: "ReaderRoleConflict" })
    expect(stderrJson(none).message).toContain("not a reader")
    expect(await login(`cli_none_${process.pid}`, PW1)).toBe("28P01")

    const service = new URL(cli.dsn).username
    for (const flags of [[], ["--rotate"]]) {
      const r = await grantReader(mine.project_id, service, PW2, ...flags)
      expect(r.code, r.stderr).toBe(1)
      expect(stderrJson(r)).toMatchObject({ code: "ReaderRoleConflict" })
      expect(stderrJson(r).message).toContain("not created by mesa-ducklake")
      const theirs = await grantReader(mine.project_id, `cli_other_${process.pid}`, PW2, ...flags)
      expect(theirs.code, theirs.stderr).toBe(1)
      expect(stderrJson(theirs).message).toContain("another project")
    }
    expect(await login()).toBe("ok")
    expect(await login(service, PW2)).toBe("28P01")
    expect(await login(`cli_other_${process.pid}`, PW1)).toBe("ok")
  })
})
