/**
 * Where the listener resumes, read back from what it committed. Every snapshot the listener writes names, in its
 * note, the batch it came from and the last stream offset it covers: `irods-amqp <queue> batch <a> through <b>`.
 * Batches commit one after another, so everything before the newest batch start `a` (over all projects) is settled:
 * the listener resumes there, and skips, per project, the offsets up to that project's newest `b`. The position is
 * committed in the same transaction as the changes (it is the snapshot), so a kill between commit and
 * acknowledgement records nothing twice.
 *
 * Owns: `noteFor`, `parseNote`, `readCheckpoints`, `Checkpoints`.
 */
import { Effect } from "effect"
import type { DuckLakeClientService } from "../client/DuckLakeClient.js"

export const noteFor = (queue: string, batchStart: number, through: number, what: string) =>
  `irods-amqp ${queue} batch ${batchStart} through ${through}: ${what}`

const NOTE = /^irods-amqp (\S+) batch (\d+) through (\d+)/

export const parseNote = (note: string | null): { queue: string; batchStart: number; through: number } | undefined => {
  const m = note === null ? null : NOTE.exec(note)
  return m === null ? undefined : { queue: m[1]!, batchStart: Number(m[2]), through: Number(m[3]) }
}

export interface Checkpoints {
  /** The offset to consume from. */
  readonly resumeFrom: number
  /** Per project: the last offset its history already holds. */
  readonly through: Map<string, number>
}

/**
 * Reads each project's newest listener snapshot for `queue` (among its `depth` newest snapshots: the listener's last
 * batch is recent in every project it touched, unless `depth` other writes came after it — then that project's
 * position is older than the resume point anyway).
 */
export const readCheckpoints = (client: DuckLakeClientService, queue: string, depth = 500) =>
  Effect.gen(function*() {
    const projects = yield* client.listProjects
    const found = yield* Effect.forEach(projects, (p) =>
      client.listSnapshots(p.projectId, { limit: depth }).pipe(
        Effect.map((snaps) => {
          for (const s of snaps) {
            const n = parseNote(s.note)
            if (n !== undefined && n.queue === queue) return [p.projectId, n] as const
          }
          return undefined
        })
      ), { concurrency: 4 })
    const through = new Map<string, number>()
    let resumeFrom = 0
    for (const f of found) {
      if (f === undefined) continue
      through.set(f[0], f[1].through)
      resumeFrom = Math.max(resumeFrom, f[1].batchStart)
    }
    return { resumeFrom, through } satisfies Checkpoints
  })
