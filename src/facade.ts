/**
 * A Promise facade for callers that do not use Effect: `await openDuckLake(options)` gives the client's methods as
 * async functions, plus `close()` and `Symbol.asyncDispose` (`await using lake = await openDuckLake(...)`).
 * Rejections carry our tagged errors themselves (`err._tag === "CatalogUnavailable"`), not a wrapper.
 */
import { Cause, Effect, Exit, type Layer, ManagedRuntime, Redacted } from "effect"
import { client, mounted } from "../layers/components.js"
import type { AsOfOptions, HistoryFilter } from "./core/domain.js"
import { DuckLakeClient, type DuckLakeClientService, layerNotConfigured, type RecordInput } from "./client/DuckLakeClient.js"

/**
 * Options of `openDuckLake`. Optional fields also take `undefined` (an unset environment variable, as in
 * `dsn: process.env.MESA_DUCKLAKE_DSN`), which means the same as leaving them out.
 */
export interface OpenOptions {
  /** Catalog DSN. Blank or absent: modes B/C (writes are "not recorded", reads fail with CatalogUnavailable). */
  readonly dsn?: string | Redacted.Redacted<string> | undefined
  /** The mounted zone (or a local directory standing in for it) and the logical prefix it stands for. */
  readonly storage: { readonly mountRoot: string; readonly logicalPrefix?: string | undefined }
  readonly cacheDir: string
  readonly cacheMaxBytes?: number | undefined
}

type Promisified<S> = {
  readonly [K in keyof S]: S[K] extends (...args: infer A) => Effect.Effect<infer R, any, any> ? (...args: A) => Promise<R>
    : S[K] extends Effect.Effect<infer R, any, any> ? () => Promise<R>
    : S[K]
}

export type DuckLake = Promisified<Omit<DuckLakeClientService, "recording">> & {
  readonly recording: boolean
  readonly close: () => Promise<void>
  readonly [Symbol.asyncDispose]: () => Promise<void>
}

export const openDuckLake = async (options: OpenOptions): Promise<DuckLake> => {
  const dsn = options.dsn === undefined ? "" : Redacted.isRedacted(options.dsn) ? Redacted.value(options.dsn) : options.dsn
  const layer: Layer.Layer<DuckLakeClient, unknown> = dsn.trim() === ""
    ? layerNotConfigured
    : client(
      {
        dsn: Redacted.make(dsn),
        cacheDir: options.cacheDir,
        ...(options.cacheMaxBytes === undefined ? {} : { cacheMaxBytes: options.cacheMaxBytes })
      },
      mounted({ mountRoot: options.storage.mountRoot, logicalPrefix: options.storage.logicalPrefix ?? "/" })
    )
  const runtime = ManagedRuntime.make(layer)
  const service = await run(runtime, DuckLakeClient)
  const call = <A>(f: (s: DuckLakeClientService) => Effect.Effect<A, unknown>) => run(runtime, f(service))
  let closed = false
  const close = async () => {
    if (!closed) {
      closed = true
      await runtime.dispose()
    }
  }
  return {
    recording: service.recording,
    registerProject: (input) => call((s) => s.registerProject(input)),
    getProject: (id) => call((s) => s.getProject(id)),
    findProjectByPath: (path) => call((s) => s.findProjectByPath(path)),
    listProjects: () => call((s) => s.listProjects),
    recordChanges: (input: RecordInput) => call((s) => s.recordChanges(input)),
    ingestChanges: (input) => call((s) => s.ingestChanges(input)),
    recordRename: (input) => call((s) => s.recordRename(input)),
    getAvus: (projectId, path) => call((s) => s.getAvus(projectId, path)),
    getAvusAsOf: (projectId, path, at, opts?: AsOfOptions) => call((s) => s.getAvusAsOf(projectId, path, at, opts)),
    getHistory: (projectId, filter?: HistoryFilter) => call((s) => s.getHistory(projectId, filter)),
    listSnapshots: (projectId, opts) => call((s) => s.listSnapshots(projectId, opts)),
    diff: (projectId, from, to) => call((s) => s.diff(projectId, from, to)),
    compact: (projectId, opts) => call((s) => s.compact(projectId, opts)),
    deleteScheduledFiles: (projectId, opts) => call((s) => s.deleteScheduledFiles(projectId, opts)),
    setProjectStatus: (projectId, status) => call((s) => s.setProjectStatus(projectId, status)),
    getSnapshotChanges: (projectId, id) => call((s) => s.getSnapshotChanges(projectId, id)),
    flush: () => call((s) => s.flush),
    catchUpIndex: (projectId) => call((s) => s.catchUpIndex(projectId)),
    grantProjectReader: (projectId, role, password, options) =>
      call((s) => s.grantProjectReader(projectId, role, password, options)),
    recoverPendingPushes: (opts) => call((s) => s.recoverPendingPushes(opts)),
    verifyProject: (id) => call((s) => s.verifyProject(id)),
    close,
    [Symbol.asyncDispose]: close
  }
}

/** Run and reject with the failure itself (our tagged error), not a FiberFailure wrapper. */
const run = async <A, E, R>(runtime: ManagedRuntime.ManagedRuntime<R, unknown>, effect: Effect.Effect<A, E, R>) => {
  const exit = await runtime.runPromiseExit(effect)
  if (Exit.isSuccess(exit)) return exit.value
  throw Cause.squash(exit.cause)
}
