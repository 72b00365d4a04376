/**
 * The storage side of `verifyProject`: the stored bytes of every live file (size, checksum, Parquet footer) hashed
 * here, the commit markers (each equal to its record, none without one, none missing where the catalog says it
 * landed) and the chain's anchor outside the catalog (the AVU on the iRODS project root).
 */
import { Effect, Option } from "effect"
import * as fs from "node:fs/promises"
import * as nodePath from "node:path"
import { ANCHOR_ATTRIBUTE, markerDigest, parseAnchor } from "../catalog/chain.js"
import { TABLE_NAME } from "../catalog/ducklakeSchema.js"
import type { Project } from "../core/domain.js"
import {
  checksumFile,
  formatIrodsChecksum,
  type LakeStorageService,
  parseIrodsChecksum,
  type StoredEntry
} from "../storage/LakeStorage.js"
import { compactionMarkerName, MARKER_DIR, snapshotMarkerName } from "../core/layout.js"
import { type ChainedRecord, type ChainIndex, type ReportProblem, same } from "./verifyModel.js"

/** A stored file's size, checksum (in the recorded algorithm) and the footer length its last 8 bytes give. */
const examineFile = (local: string, expected: ReturnType<typeof parseIrodsChecksum>) =>
  Effect.tryPromise(async () => {
    const st = await fs.stat(local)
    const actual = expected === undefined ? undefined : await checksumFile(local, expected.algorithm)
    // A Parquet file ends with its footer's length and "PAR1": ducklake_data_file.footer_size must say so.
    const handle = await fs.open(local, "r")
    const tail = Buffer.alloc(8)
    try {
      await handle.read(tail, 0, 8, Math.max(0, st.size - 8))
    } finally {
      await handle.close()
    }
    return { size: st.size, actual, footer: tail.readUInt32LE(0) }
  })

/**
 * 4. The stored bytes of every live file, hashed here (a server-side checksum may be stale); files are fetched into
 * `tmp` unless storage has them locally. Returns how many files were checked.
 */
export const checkStoredFiles = (
  storage: LakeStorageService,
  p: Project,
  tmp: string,
  { byFile }: ChainIndex,
  live: ReadonlyArray<any>,
  problem: ReportProblem
) =>
  Effect.gen(function*() {
    let filesChecked = 0
    for (const f of live) {
      const r = byFile.get(f.path)
      if (r === undefined) continue
      const relative = `main/${TABLE_NAME}/${f.path}`
      const remote = `${p.ducklakePath}/${relative}`
      const expected = parseIrodsChecksum(r.checksum)
      const direct = storage.localPath(remote)
      const local = Option.isSome(direct) ? direct.value : nodePath.join(tmp, nodePath.basename(f.path))
      const fetched = Option.isSome(direct) ? Effect.void : storage.get(remote, local)
      const outcome = yield* fetched.pipe(
        Effect.zipRight(examineFile(local, expected)),
        Effect.either
      )
      if (!Option.isSome(direct)) yield* Effect.promise(() => fs.rm(local, { force: true }).catch(() => undefined))
      filesChecked++
      if (outcome._tag === "Left") {
        problem({ kind: "file-missing", snapshotId: r.snapshotId, file: relative, detail: "the stored file cannot be read" })
        continue
      }
      const { actual, footer, size } = outcome.right
      if (r.fileSizeBytes >= 0 && size !== r.fileSizeBytes) {
        problem({ kind: "file-altered", snapshotId: r.snapshotId, file: relative, detail: `is ${size} bytes, the chain says ${r.fileSizeBytes}` })
      } else if (expected !== undefined && actual !== undefined && actual.hex !== expected.hex) {
        problem({
          kind: "file-altered",
          snapshotId: r.snapshotId,
          file: relative,
          detail: `its checksum is ${formatIrodsChecksum(actual)}, the chain says ${r.checksum}`
        })
      } else if (Number(f.footer_size) !== footer) {
        // The bytes are the recorded ones: the row's footer size is what changed.
        problem({
          kind: "catalog-row-altered",
          snapshotId: r.snapshotId,
          file: "ducklake_data_file",
          detail: `footer_size of ${f.path} is ${f.footer_size}, the file's footer is ${footer} bytes`
        })
      }
    }
    return filesChecked
  })

/** A marker's text parsed and checked against itself (pretty JSON, digest of the rest), or what is wrong with it. */
const parseMarker = (text: string): { readonly marker: any } | { readonly detail: string } => {
  let marker: any
  try {
    marker = JSON.parse(text)
  } catch {
    return { detail: "the marker is not JSON" }
  }
  if (marker === null || typeof marker !== "object" || Array.isArray(marker)) {
    return { detail: "the marker is not a JSON object" }
  }
  // Written as pretty JSON with a digest of the rest: any byte changed shows in one or the other.
  if (text !== JSON.stringify(marker, null, 2) + "\n") {
    return { detail: "the marker's text is not as it was written" }
  }
  if (marker !== null && typeof marker === "object" && "digest" in marker) {
    const { digest, ...body } = marker
    if (digest !== markerDigest(body)) return { detail: `its digest ${String(digest)} does not match its content` }
  } else if (marker?.recordHash !== undefined) {
    return { detail: "the marker's digest is missing" }
  }
  return { marker }
}

/** What a marker of `kind` ("snapshot" or "compaction") must say, given its record: [field, found, expected]. */
const markerFields = (marker: any, kind: string, r: ChainedRecord) => {
  const fields: Array<[string, unknown, unknown]> = [
    ["projectId", marker.projectId, r.projectId],
    ["snapshotId", marker.snapshotId, r.snapshotId],
    ["snapshotTime", marker.snapshotTime, r.snapshotTime],
    ["fileName", marker.fileName, r.fileName],
    ["checksum", marker.checksum, r.checksum],
    ["recordCount", marker.recordCount, r.recordCount],
    ...(kind === "snapshot"
      ? [
        ["actor", marker.actor, r.actor],
        ["note", marker.note, r.note],
        ["idempotencyKey", marker.idempotencyKey, r.idempotencyKey],
        ["contentHash", marker.contentHash, r.contentHash]
      ] as Array<[string, unknown, unknown]>
      : []),
    // Markers written before the chain (layout 1) have no hashes: their other fields still count.
    ...(marker.recordHash === undefined ? [] : [
      ["prevHash", marker.prevHash, r.prevHash],
      ["recordHash", marker.recordHash, r.hash],
      ["fileSizeBytes", marker.fileSizeBytes, r.fileSizeBytes]
    ] as Array<[string, unknown, unknown]>)
  ]
  if ((kind === "snapshot") !== (r.kind === "data")) fields.push(["kind", kind, r.kind])
  return fields
}

/** The text of a marker, read in place when storage has it locally, else fetched into `tmp`. */
const readMarker = (storage: LakeStorageService, tmp: string, entry: StoredEntry) => {
  const local = nodePath.join(tmp, entry.name)
  return Option.match(storage.localPath(entry.path), {
    onSome: (path) => Effect.tryPromise(() => fs.readFile(path, "utf8")),
    onNone: () =>
      Effect.zipRight(storage.get(entry.path, local), Effect.tryPromise(() => fs.readFile(local, "utf8")))
  }).pipe(Effect.either)
}

/**
 * 5. Commit markers: each equal to its record; none without one; none missing where the catalog says it landed.
 * Returns how many markers were checked.
 */
export const checkMarkers = (
  storage: LakeStorageService,
  p: Project,
  tmp: string,
  { byId, records }: ChainIndex,
  mesaRows: ReadonlyArray<any>,
  problem: ReportProblem
) =>
  Effect.gen(function*() {
    const markerDir = `${p.ducklakePath}/${MARKER_DIR}`
    const entries = yield* storage.list(markerDir).pipe(
      Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed([]))
    )
    const seen = new Set<number>()
    let markersChecked = 0
    for (const e of entries) {
      const m = /^(snapshot|compaction)_(\d{10})\.json$/.exec(e.name)
      if (m === null || e.type !== "data_object") continue
      const id = Number(m[2])
      const file = `${MARKER_DIR}/${e.name}`
      const text = yield* readMarker(storage, tmp, e)
      markersChecked++
      if (text._tag === "Left") {
        problem({ kind: "marker-altered", snapshotId: id, file, detail: "the marker cannot be read" })
        continue
      }
      const parsed = parseMarker(text.right)
      if ("detail" in parsed) {
        problem({ kind: "marker-altered", snapshotId: id, file, detail: parsed.detail })
        continue
      }
      const { marker } = parsed
      const r = byId.get(id)
      if (r === undefined) {
        problem({ kind: "marker-without-record", snapshotId: id, file, detail: "the marker names a snapshot the chain does not have" })
        continue
      }
      seen.add(id)
      for (const [name, found, expected] of markerFields(marker, m[1]!, r)) {
        if (!same(found, expected)) {
          problem({
            kind: "marker-altered",
            snapshotId: id,
            file,
            detail: `${name} is ${JSON.stringify(found)}, the chain says ${JSON.stringify(expected)}`
          })
        }
      }
    }
    const written = new Set(mesaRows.filter((m) => m.marker_written === true).map((m) => Number(m.snapshot_id)))
    for (const r of records) {
      if (seen.has(r.snapshotId)) continue
      if (r.kind === "data" && !written.has(r.snapshotId)) continue // still to be written (background or recovery)
      problem({
        kind: "marker-missing",
        snapshotId: r.snapshotId,
        file: `${MARKER_DIR}/${r.kind === "data" ? snapshotMarkerName(r.snapshotId) : compactionMarkerName(r.snapshotId)}`,
        detail: "the marker is not in storage"
      })
    }
    return markersChecked
  })

/** 6. The anchor outside the catalog: present once there is a head, naming a record of the chain, and the head. */
export const checkAnchor = (
  storage: LakeStorageService,
  p: Project,
  { byId, records }: ChainIndex,
  problem: ReportProblem
) =>
  Effect.gen(function*() {
    const head = records.at(-1)
    if (storage.anchor === undefined) return
    const stored = yield* storage.anchor.read(p.irodsPath, ANCHOR_ATTRIBUTE).pipe(Effect.either)
    const value = stored._tag === "Right" ? Option.getOrUndefined(stored.right) : undefined
    if (head !== undefined && value === undefined) {
      problem({
        kind: "anchor-missing",
        snapshotId: head.snapshotId,
        file: `${p.irodsPath} AVU ${ANCHOR_ATTRIBUTE}`,
        detail: stored._tag === "Left" ? `cannot be read: ${stored.left.message}` : "the project root has no anchor"
      })
    } else if (value !== undefined) {
      const anchor = parseAnchor(value)
      const r = anchor === undefined ? undefined : byId.get(anchor.snapshotId)
      if (anchor === undefined || r === undefined || r.hash !== anchor.hash) {
        problem({
          kind: "anchor-mismatch",
          snapshotId: anchor?.snapshotId ?? head?.snapshotId ?? 0,
          file: `${p.irodsPath} AVU ${ANCHOR_ATTRIBUTE}`,
          detail: `the anchor is ${value}; the chain has ${r === undefined ? "no such record" : `${r.snapshotId}:${r.hash}`}`
        })
      } else if (head !== undefined && anchor.snapshotId !== head.snapshotId) {
        problem({
          kind: "anchor-behind",
          snapshotId: head.snapshotId,
          file: `${p.irodsPath} AVU ${ANCHOR_ATTRIBUTE}`,
          detail: `the anchor names snapshot ${anchor.snapshotId}, the chain's head is ${head.snapshotId} (recovery re-anchors)`
        })
      }
    }
  })
