/**
 * `verifyProject`: tamper evidence for one project's history. Walks the hash chain (src/catalog/chain.ts) and checks
 * every link against the catalog's own rows, the stored files and the commit markers, and the chain's head against
 * its anchor outside the catalog (an AVU on the iRODS project root). Reads only; changes nothing anywhere.
 *
 * What it catches (each is a `VerifyProblem` naming the snapshot, the file and what differs):
 * - a chain record changed (its hash no longer matches its fields) or a link broken (a record removed or inserted);
 * - a `mesa_snapshot`, `ducklake_snapshot` or `ducklake_data_file` row that differs from its chain record, a live
 *   file no record vouches for, a snapshot whose rows no live file (or two) hold;
 * - a stored file whose bytes differ from the recorded checksum, or that is missing;
 * - a commit marker that differs from its record, names a snapshot the chain does not have, or is missing;
 * - an anchor that names a record the chain does not have, or is behind the head.
 *
 * This module owns `verifyProject`, which runs the steps in order; the steps live in `operations/`:
 * `verifyCatalog.ts` (reading the rows, the chain walk, catalog rows, data-file coverage), `verifyStorage.ts`
 * (stored bytes, markers, anchor) and `verifyModel.ts` (the report's shapes and what the steps share).
 */
import { Effect } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as nodePath from "node:path"
import { Catalog } from "../catalog/Catalog.js"
import type { Project } from "../core/domain.js"
import { LakeStorage } from "../storage/LakeStorage.js"
import { checkCatalogRows, checkDataFiles, liveFiles, readCatalogRows, walkChain } from "./verifyCatalog.js"
import type { VerifyProblem, VerifyReport } from "./verifyModel.js"
import { checkAnchor, checkMarkers, checkStoredFiles } from "./verifyStorage.js"

export type { VerifyProblem, VerifyProblemKind, VerifyReport } from "./verifyModel.js"

/** Verifies one project (see the module comment). Needs the catalog and the storage; reads only. */
export const verifyProject = (p: Project) =>
  Effect.gen(function*() {
    const catalog = yield* Catalog
    const storage = yield* LakeStorage
    const problems: Array<VerifyProblem> = []
    const problem = (x: VerifyProblem) => problems.push(x)

    const rows = yield* readCatalogRows(catalog, p.metadataSchema)
    // 1. The chain itself: every record's hash, every link.
    const { unverifiable, ...chain } = walkChain(p.projectId, rows.chainRows, problem)
    // 2. The catalog's rows against their records.
    checkCatalogRows(chain, rows, problem)
    // 3. Live data files: each vouched for by a record, and every recorded snapshot's rows held by exactly one.
    const live = liveFiles(rows.dataFiles)
    checkDataFiles(chain, live, rows.dataFiles, problem)
    // 4. The stored bytes of every live file, hashed here (a server-side checksum may be stale).
    const tmp = yield* Effect.acquireRelease(
      Effect.promise(() => fs.mkdtemp(nodePath.join(os.tmpdir(), "mesa-verify-"))),
      (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }).catch(() => undefined))
    )
    const filesChecked = yield* checkStoredFiles(storage, p, tmp, chain, live, problem)
    // 5. Commit markers: each equal to its record; none without one; none missing where the catalog says it landed.
    const markersChecked = yield* checkMarkers(storage, p, tmp, chain, rows.mesaRows, problem)
    // 6. The anchor outside the catalog.
    yield* checkAnchor(storage, p, chain, problem)

    const head = chain.records.at(-1)
    problems.sort((a, b) => (a.snapshotId ?? 0) - (b.snapshotId ?? 0))
    return {
      projectId: p.projectId,
      ok: problems.length === 0,
      records: chain.records.length,
      headSnapshot: head?.snapshotId ?? null,
      headHash: head?.hash ?? null,
      filesChecked,
      markersChecked,
      anchor: storage.anchor === undefined ? "not-supported" as const : "checked" as const,
      unverifiable,
      problems
    } satisfies VerifyReport
  }).pipe(Effect.scoped, Effect.withSpan("verifyProject", { attributes: { projectId: p.projectId } }))
