/**
 * The history's current AVUs of many paths at once, for planning a batch (plan.ts). `getAvus` answers one path per
 * round trip (about 1.5 ms each here: 1,000 paths took 1.3–2.4 s a batch, most of a batch's time); this reads the
 * project's current-state index for all of them in one statement, as drift does, read-only and with the same rule:
 * when a bulk ingest has left the index behind, catch it up (`catchUpIndex`) and read again.
 *
 * Owns: `readState`.
 */
import { Effect } from "effect"
import { Catalog, indexMark } from "../catalog/Catalog.js"
import type { DuckLakeClientService } from "../client/DuckLakeClient.js"
import type { Project } from "../core/domain.js"
import { CatalogError } from "../core/errors.js"
import { type State, tripleKey } from "./plan.js"

export const readState = (catalog: Catalog["Type"], client: DuckLakeClientService, project: Project, paths: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const state: State = new Map(paths.map((p) => [p, new Map()]))
    for (let attempt = 1; attempt <= 5; attempt++) {
      const rows = yield* catalog.withSql((sql) =>
        sql<{ behind: boolean; irods_path: string | null; attribute: string; value: string; unit: string }>`
          SELECT l.behind, c.irods_path, c.attribute, c.value, c.unit
          FROM (SELECT ${indexMark(sql, project.metadataSchema)} IS NOT NULL AS behind) l
          LEFT JOIN (unnest(${paths as Array<string>}::text[]) AS k(p)
                     JOIN ${sql(project.metadataSchema)}.mesa_current_avus c
                       ON c.irods_path = k.p COLLATE "C" AND c.op = 'add') ON NOT l.behind`
      )
      if (rows[0]?.behind === true) {
        yield* client.catchUpIndex(project.projectId)
        continue
      }
      for (const r of rows) {
        if (r.irods_path === null) continue
        const t = { attribute: r.attribute, value: r.value, unit: r.unit }
        state.get(r.irods_path)?.set(tripleKey(t), t)
      }
      return state
    }
    return yield* new CatalogError({
      operation: "listen.readState",
      cause: new Error("bulk ingests keep committing to this project; the listener will try again")
    })
  })
