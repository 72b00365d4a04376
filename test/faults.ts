/**
 * Fault injection for tests: a service layer with some operations replaced over the real one (`overriding`), and
 * its two common uses: a `LakeStorage` whose calls fail, corrupt or die as rules decide call by call
 * (`faultyStorage`, `storageFaults`), and a node `FileSystem` with some operations replaced (`faultyFileSystem`).
 * Rules are read when each call runs, so a test switches faults by changing the variables its rules read.
 */
import { FileSystem } from "@effect/platform"
import { NodeFileSystem } from "@effect/platform-node"
import { type Context, Effect, Layer } from "effect"
import { ChecksumMismatch, StorageError } from "../src/core/errors.js"
import { LakeStorage, type LakeStorageService } from "../src/storage/LakeStorage.js"

/** A layer of `tag` over the one below it: the real service with the operations `overrides` returns replaced. */
export const overriding = <I, S>(tag: Context.Tag<I, S>, overrides: (real: S) => Partial<S>): Layer.Layer<I, never, I> =>
  Layer.effect(tag, Effect.map(tag, (real): S => ({ ...real, ...overrides(real) })))

/** Node's FileSystem with the operations `overrides` returns replaced (it gets the real one). */
export const faultyFileSystem = (overrides: (real: FileSystem.FileSystem) => Partial<FileSystem.FileSystem>) =>
  overriding(FileSystem.FileSystem, overrides).pipe(Layer.provide(NodeFileSystem.layer))

/**
 * What a fault does to one storage call:
 * - a `StorageError` reason (`"Unavailable"`, `"Timeout"`, `"PermissionDenied"`, …): the call fails with it at once;
 * - `"corrupt"`: the real call runs, then the call fails with `ChecksumMismatch` (a stored copy that does not match);
 * - `"die-after"`: the real call runs, then the fiber is interrupted (a writer dying right after the call);
 * - a function: the real call, wrapped by it (to do something around the call).
 */
export type StorageFault =
  | StorageError["reason"]
  | "corrupt"
  | "die-after"
  | (<A, E>(call: Effect.Effect<A, E>) => Effect.Effect<A, E>)

type Operation = "put" | "get" | "stat" | "checksum" | "list" | "remove" | "makeCollection"

/** Per operation, a rule given the call's arguments: the fault to inject, or undefined for the real call. */
export type StorageFaults = {
  readonly [K in Operation]?: (...args: Parameters<LakeStorageService[K]>) => StorageFault | undefined
}

const inject = (operation: Operation, fault: StorageFault, path: string, call: () => Effect.Effect<unknown, unknown>) => {
  if (typeof fault === "function") return fault(call())
  switch (fault) {
    case "corrupt":
      return Effect.zipRight(call(), Effect.fail(new ChecksumMismatch({ path, expected: "aa", actual: "bb" })))
    case "die-after":
      return Effect.zipRight(call(), Effect.interrupt)
    default:
      return Effect.fail(new StorageError({ operation, path, reason: fault }))
  }
}

/** The `LakeStorage` below, with faults injected as `faults` decides, call by call. */
export const storageFaults = (faults: StorageFaults): Layer.Layer<LakeStorage, never, LakeStorage> =>
  overriding(LakeStorage, (real) => {
    const replaced: Record<string, unknown> = {}
    for (const operation of Object.keys(faults) as Array<Operation>) {
      const rule = faults[operation] as (...args: Array<unknown>) => StorageFault | undefined
      const original = real[operation] as (...args: Array<unknown>) => Effect.Effect<unknown, unknown>
      replaced[operation] = (...args: Array<unknown>) =>
        Effect.suspend(() => {
          const fault = rule(...args)
          const call = () => original(...args)
          if (fault === undefined) return call()
          // put(local, path); every other operation takes the stored path first.
          return inject(operation, fault, String(operation === "put" ? args[1] : args[0]), call)
        })
    }
    return replaced as Partial<LakeStorageService>
  })

/** `storage` (a layer) with faults injected as `faults` decides, call by call. */
export const faultyStorage = <E, R>(storage: Layer.Layer<LakeStorage, E, R>, faults: StorageFaults) =>
  storageFaults(faults).pipe(Layer.provide(storage))
