/**
 * Issue 16, defects 8 and 9 (CLI parts), through the built CLI:
 * - `record` refuses stdin that is not UTF-8 (exit 1, nothing written) instead of storing U+FFFD;
 * - impossible dates (`2024-02-30`, `24:00`) are refused by `record`, `as-of` (valid and known-at time) and `history`;
 * - `rebuild --dry-run` exits 2 when it lists problems, 0 when clean;
 * - every command accepts every option its help lists, `--log-level` included, wherever it stands among them.
 */
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { describe, expect, it } from "vitest"
import { type CliResult, cliFixture, runCli, stderrJson } from "./support.js"

const { env, register } = cliFixture("safety", "safety")

const change = (path: string, extra: Record<string, unknown> = {}) => ({
  irods_path: path,
  target_type: "data_object",
  attribute: "label",
  value: "v",
  op: "add",
  actor: "alice",
  ...extra
})

/** `f` over `items`, a few at a time (each runs CLI processes). */
const inBatches = async <A, B>(items: ReadonlyArray<A>, f: (a: A) => Promise<B>, size = 6): Promise<Array<B>> => {
  const out: Array<B> = []
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(f))))
  return out
}

/** `record` with these exact bytes on stdin. */
const recordBytes = (bytes: Uint8Array, runEnv = env) =>
  runCli(["record", "--json"], { env: runEnv, onSpawn: (child) => child.stdin!.end(bytes) })

/** Every file under the project's lake directory, with its size. */
const lakeFiles = (ducklakePath: string): Array<string> => {
  const dir = nodePath.join(env.MESA_DUCKLAKE_MOUNT_ROOT!, ducklakePath)
  if (!fs.existsSync(dir)) return []
  return (fs.readdirSync(dir, { recursive: true }) as Array<string>)
    .map((f) => nodePath.join(dir, f))
    .filter((f) => fs.statSync(f).isFile())
    .map((f) => `${nodePath.relative(dir, f)} ${fs.statSync(f).size}`)
    .sort()
}

/** The project's snapshots (ids, change counts) and its lake's files: what must not change when input is refused. */
const state = async (p: { project_id: string; ducklake_path: string }) => {
  const r = await runCli(["snapshots", "--json", p.project_id], { env })
  expect(r.code, r.stderr).toBe(0)
  const snapshots = (JSON.parse(r.stdout) as Array<{ snapshot_id: number; change_count: number }>).map((s) => [s.snapshot_id, s.change_count])
  return { snapshots, files: lakeFiles(p.ducklake_path) }
}

const refused = (r: CliResult, code: string, pattern: RegExp) => {
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(1)
  const e = stderrJson(r)
  expect(e.code).toBe(code)
  expect(e.message).toMatch(pattern)
  expect(r.stdout).toBe("")
}

describe("record: stdin must be UTF-8 (defect 8)", () => {
  it("refuses every kind of ill-formed UTF-8 with exit 1 and writes nothing, with or without a catalog", async () => {
    const p = await register()
    const path = `${p.irods_path}/a.csv`
    const first = await runCli(["record", "--json"], { env, stdin: JSON.stringify(change(path, { value: "before" })) })
    expect(first.code, first.stderr).toBe(0)
    const before = await state(p)
    expect(before.snapshots.length).toBeGreaterThan(0)

    const json = (value: string) => Buffer.from(JSON.stringify(change(path, { value })))
    /** The change with `bytes` spliced into its value. */
    const withBytes = (...bytes: Array<number>) => {
      const text = JSON.stringify(change(path, { value: "X" }))
      const at = text.indexOf('"X"') + 1
      return Buffer.concat([Buffer.from(text.slice(0, at)), Buffer.from(bytes), Buffer.from(text.slice(at + 1))])
    }
    const bad: ReadonlyArray<readonly [string, Uint8Array]> = [
      ["a stray 0xff", withBytes(0xff)],
      ["a lone continuation byte", withBytes(0x80)],
      ["an overlong '/'", withBytes(0xc0, 0xaf)],
      ["an overlong NUL", withBytes(0xe0, 0x80, 0x80)],
      ["a UTF-16 surrogate (CESU-8)", withBytes(0xed, 0xa0, 0x80)],
      ["a code point above U+10FFFF", withBytes(0xf4, 0x90, 0x80, 0x80)],
      ["a truncated sequence", withBytes(0xe2, 0x82)],
      ["Latin-1 é", withBytes(0xe9)],
      ["a truncated sequence at the very end", Buffer.concat([json("ok"), Buffer.from([0xf0, 0x9f, 0x98])])],
      ["a bad byte on the second NDJSON line", Buffer.concat([json("ok"), Buffer.from("\n"), withBytes(0x61, 0xfe, 0x62)])]
    ]
    await inBatches(bad, async ([what, bytes]) => {
      const r = await recordBytes(bytes)
      refused(r, "InvalidInput", /^stdin is not valid UTF-8: byte 0x[0-9a-f]{2} at offset \d+ \(line \d+\); nothing was recorded$/)
      expect(r.stderr, what).not.toContain("\ufffd")
      // Without a catalog (modes B/C) the input is still checked first: exit 1, not "not recorded" (3).
      refused(await recordBytes(bytes, { ...env, MESA_DUCKLAKE_DSN: "" }), "InvalidInput", /not valid UTF-8/)
    }, 5)
    expect(stderrJson(await recordBytes(withBytes(0x61, 0xff))).message).toContain("byte 0xff at offset")
    expect(stderrJson(await recordBytes(bad[9]![1])).message).toContain("(line 2)")
    expect(await state(p)).toEqual(before)

    // Well-formed UTF-8, however unusual, is recorded exactly (a byte-order mark is dropped).
    const exotic = "é ü 漢字 😀 \u{10FFFD} \uFFFD"
    const ok = await recordBytes(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), json(exotic)]))
    expect(ok.code, ok.stderr).toBe(0)
    const avus = await runCli(["avus", "--json", path], { env })
    expect(avus.code, avus.stderr).toBe(0)
    expect((JSON.parse(avus.stdout) as Array<{ value: string }>).map((a) => a.value).sort()).toEqual(["before", exotic].sort())
  }, 180_000)
})

describe("impossible dates through the CLI (defect 8)", () => {
  it("record, as-of (valid time and --known-at) and history refuse them with exit 1, naming the field", async () => {
    const p = await register()
    const path = `${p.irods_path}/b.csv`
    const first = await runCli(["record", "--json"], { env, stdin: JSON.stringify(change(path, { ts: "2024-02-29T12:00:00Z" })) })
    expect(first.code, first.stderr).toBe(0)
    const before = await state(p)

    for (const ts of ["2024-02-30T00:00:00Z", "2023-02-29", "2024-01-01T24:00:00Z", "2024-06-30T23:59:60Z", "2024-01-01T00:00:00+24:00"]) {
      const r = await runCli(["record", "--json"], { env, stdin: JSON.stringify(change(path, { value: "w", ts })) })
      refused(r, "InvalidChange", /ts|not a real time/)
      expect(stderrJson(r).message, ts).toMatch(/not a real time/)
    }
    // One bad change in a batch refuses the batch.
    const batch = [change(path, { value: "x1", ts: "2024-03-01T00:00:00Z" }), change(path, { value: "x2", ts: "2024-04-31T00:00:00Z" })]
    refused(await runCli(["record"], { env, stdin: batch.map((c) => JSON.stringify(c)).join("\n") }), "InvalidChange", /not a real time/)
    expect(await state(p)).toEqual(before)

    refused(await runCli(["as-of", "--json", path, "2024-02-30T00:00:00Z"], { env }), "InvalidChange", /timestamp.*not a real time|not a real time/)
    refused(await runCli(["as-of", "--known-at", "2024-01-01T24:00:00Z", "--json", path, "2024-03-01T00:00:00Z"], { env }), "InvalidChange", /not a real time/)
    refused(await runCli(["history", "--from", "2023-02-29", "--json", path], { env }), "InvalidChange", /not a real time/)
    refused(await runCli(["history", "--to", "2024-12-31T23:60:00Z", "--json", path], { env }), "InvalidChange", /not a real time/)

    // The real leap day is fine, in every direction.
    const asOf = await runCli(["as-of", "--known-at", "2030-02-28T23:59:59Z", "--json", path, "2024-02-29T12:00:00Z"], { env })
    expect(asOf.code, asOf.stderr).toBe(0)
    expect(JSON.parse(asOf.stdout)).toMatchObject([{ value: "v", ts: "2024-02-29T12:00:00.000Z" }])
  }, 180_000)
})

describe("rebuild --dry-run (defect 9)", () => {
  it("exits 0 when clean and 2 when it lists problems, printing the report either way and writing nothing", async () => {
    const p = await register()
    const rec = await runCli(["record", "--json"], { env, stdin: JSON.stringify(change(`${p.irods_path}/c.csv`)) })
    expect(rec.code, rec.stderr).toBe(0)

    const clean = await runCli(["rebuild", "--dry-run", "--json", p.irods_path], { env })
    expect(clean.code, clean.stderr).toBe(0)
    expect(JSON.parse(clean.stdout)).toMatchObject({ project_id: p.project_id, written: false, problems: [] })

    // A Parquet-named file with no commit marker and no Parquet content: the dry run must list it and say so.
    const stray = nodePath.join(env.MESA_DUCKLAKE_MOUNT_ROOT!, p.ducklake_path, "main/avu_changes/snapshot_0000009999_0badf11e.parquet")
    fs.writeFileSync(stray, "not parquet")
    const before = await state(p)
    for (const args of [["--dry-run", "--json"], ["--dry-run"]]) {
      const r = await runCli(["rebuild", ...args, p.irods_path], { env })
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(2)
      expect(stderrJson(r)).toMatchObject({ code: "RebuildProblems", message: expect.stringMatching(/^1 problem\(s\) found \(dry run: nothing written\): /) })
      if (args.includes("--json")) {
        const report = JSON.parse(r.stdout) as { written: boolean; problems: Array<{ file?: string }> }
        expect(report.written).toBe(false)
        expect(report.problems).toHaveLength(1)
        expect(report.problems[0]!.file).toContain("snapshot_0000009999_0badf11e.parquet")
      } else expect(r.stdout).toContain("problems:")
    }
    expect(await state(p)).toEqual(before)
  }, 180_000)
})

// ---------------------------------------------------------------------------------------------------------------
// Every command accepts the options its help lists

const ANSI = /\u001b\[[0-9;]*m/g
const BUILT_IN = new Set(["--help", "--wizard", "--version", "--completions", "--log-level"])

interface Listed {
  readonly name: string
  /** `text`, `integer`, a choice `a | b`, or "" for a flag. */
  readonly type: string
}

/** The options a command's `--help` lists (headers of its OPTIONS section) and its positional arguments (USAGE). */
const helpOf = async (command: ReadonlyArray<string>) => {
  const r = await runCli([...command, "--help"], { env })
  expect(r.code, r.stderr).toBe(0)
  const text = r.stdout.replace(ANSI, "")
  const usage = /^\$ (.*)$/m.exec(text)?.[1] ?? ""
  const options: Array<Listed> = []
  const section = text.slice(text.indexOf("OPTIONS"))
  for (const line of section.split("\n")) {
    // `--name type`, `(-p, --name type)` or `(-h, --help)` at the start of a line.
    const m = /^\(?(?:-\w, )?(--[\w-]+)(?: (.+?))?\)?$/.exec(line)
    if (m !== null) options.push({ name: m[1]!, type: m[2] ?? "" })
  }
  const positional = [...usage.replace(/\[\([^)]*\)\]|\[--[^\]]*\]/g, "").matchAll(/<([\w -]+)>/g)].map((m) => m[1]!)
  return { options, positional }
}

const valueFor = (o: Listed): ReadonlyArray<string> =>
  o.type === "" ? [] : o.type === "integer" || o.type === "float" ? ["1"] : o.type.includes(" | ") ? [o.type.split(" | ")[0]!] : ["x"]

const argFor = (name: string) =>
  /snapshot/.test(name) ? "1" : name === "time" ? "2024-01-01T00:00:00Z" : name === "project" ? "/cliZone/none" : "/cliZone/none/x"

describe("options the help lists (defect 9)", () => {
  it("every command lists --log-level and accepts it after all of its own options, in both spellings", async () => {
    const root = await runCli(["--help"], { env })
    const listed = [...root.stdout.replace(ANSI, "").matchAll(/^ {0,4}- ([a-z-]+(?: [a-z-]+)?)\s/gm)].map((m) => m[1]!)
    // A group (`project`) runs nothing itself: its subcommands are checked.
    const commands = listed.filter((c) => !listed.some((o) => o.startsWith(`${c} `))).map((c) => c.split(" "))
    expect(commands.map((c) => c.join(" "))).toEqual(expect.arrayContaining(["record", "recover", "rebuild", "project register", "as-of", "doctor", "drift"]))
    // Without a catalog nothing can be written; a parsed command stops at "not configured" or its own checks.
    const noCatalog = { ...env, MESA_DUCKLAKE_DSN: "" }
    const stdin = JSON.stringify(change("/cliZone/none/x"))
    const failures = await inBatches(commands, async (command) => {
      const { options, positional } = await helpOf(command)
      const names = options.map((o) => o.name)
      expect(names, command.join(" ")).toContain("--log-level")
      expect(options.find((o) => o.name === "--log-level")!.type).toBe("all | trace | debug | info | warning | error | fatal | none")
      const own = options.filter((o) => !BUILT_IN.has(o.name)).flatMap((o) => [o.name, ...valueFor(o)])
      const wrong: Array<string> = []
      for (const level of [["--log-level", "info"], ["--log-level=debug"]]) {
        const args = [...command, ...own, ...level, ...positional.map(argFor)]
        const r = await runCli(args, { env: noCatalog, stdin })
        const code = r.stderr.includes('"code"') ? stderrJson(r).code : "none"
        if (code === "UsageError" || r.code === null) wrong.push(`${args.join(" ")} → exit ${r.code}: ${r.stderr.trim()}`)
      }
      return wrong
    })
    expect(failures.flat()).toEqual([])
  }, 600_000)

  it("--log-level takes effect, and a bad level is a usage error", async () => {
    const p = await register()
    const path = `${p.irods_path}/d.csv`
    const quiet = await runCli(["record", "--json"], { env, stdin: JSON.stringify(change(path)) })
    expect(quiet.code, quiet.stderr).toBe(0)
    expect(quiet.stderr).toBe("")
    const loud = await runCli(["record", "--json", "--log-level", "info"], { env, stdin: JSON.stringify(change(path, { value: "w" })) })
    expect(loud.code, loud.stderr).toBe(0)
    expect(loud.stderr).toMatch(/level=INFO.*snapshot recorded/)
    expect(JSON.parse(loud.stdout)).toMatchObject({ recorded: true, project_id: p.project_id })
    const recover = await runCli(["recover", "--max-attempts", "3", "--json", "--log-level", "warning"], { env })
    expect(recover.code, recover.stderr).toBe(0)
    expect(JSON.parse(recover.stdout)).toHaveProperty("pushed")

    for (const bad of [["--log-level", "loud"], ["--log-level"], ["--log-level=Debug"]]) {
      const r = await runCli(["recover", "--json", ...bad], { env })
      refused(r, "UsageError", /--log-level .*one of all, trace, debug, info, warning, error, fatal, none/)
    }
  }, 180_000)
})
