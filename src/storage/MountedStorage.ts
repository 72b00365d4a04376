/**
 * `LakeStorage` over a mounted iRODS zone (irodsfs, davfs2, the VICE `/data-store` mount) — or any local
 * directory standing in for one — through @effect/platform's FileSystem.
 *
 * The mount is described by the logical prefix it stands for and the local directory it appears at:
 * `{ logicalPrefix: "/iplant/home", mountRoot: "/data-store/iplant/home" }` maps
 * `/iplant/home/alice/x` ↔ `/data-store/iplant/home/alice/x`.
 *
 * Symbolic links. iRODS has none, so below the mount root a link is never part of the zone: it is something placed
 * on the local file system that would send a read or a write somewhere else (outside the zone, or into another
 * project's lake, where a commit marker would overwrite the other project's). Every operation therefore resolves its
 * real path first and refuses — `StorageError` "PermissionDenied", nothing read or written — any path whose existing
 * part is not exactly its own real path: a link in any component below the mount root, or the target itself a
 * link (dangling ones included). The mount root may be a link (`/data-store` often is): it is resolved once, when
 * the adapter is built (or on first use, if the mount was not there yet), and its real path is used from then on.
 *
 * What this does not close: the check and the operation are separate system calls, so a process that can change
 * the directories on this machine can swap a directory for a link in between (time of check to time of use). `put`
 * checks again right before its rename, `checksum` opens with O_NOFOLLOW, and `makeCollection` checks again after
 * creating, which narrows the window to microseconds but does not shut it; and `localPath` hands DuckDB a path that
 * DuckDB opens later, on its own. Hard links and bind mounts are not links to `realpath` and are not detected.
 * Whoever can write the mount's directories outside iRODS must be trusted to that extent.
 *
 * This module owns the adapter (`make`, its layers); behind it `mountContext.ts` maps logical paths onto the mount
 * and refuses links, `mountLinks.ts` holds the link check itself, and `mountOperations.ts` the storage operations.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { Config, Effect, Layer } from "effect"
import { LakeStorage } from "./LakeStorage.js"
import { makeMountContext, type MountConfig } from "./mountContext.js"
import * as Ops from "./mountOperations.js"

export type { MountConfig } from "./mountContext.js"

export const make = (config: MountConfig) =>
  Effect.gen(function*() {
    const ctx = makeMountContext(yield* FileSystem.FileSystem, config)
    return LakeStorage.of({
      kind: "mounted",
      put: Ops.put(ctx),
      get: Ops.get(ctx),
      stat: Ops.stat(ctx),
      checksum: Ops.checksum(ctx),
      list: Ops.list(ctx),
      remove: Ops.remove(ctx),
      makeCollection: Ops.makeCollection(ctx),
      move: Ops.move(ctx),
      localPath: Ops.localPath(ctx),
      resolvesObjectIds: false
    })
  })

/** A mounted-zone `LakeStorage`. Requires a `FileSystem` (e.g. `NodeFileSystem.layer`). */
export const layer = (config: MountConfig) => Layer.effect(LakeStorage, make(config))

/** From `MESA_DUCKLAKE_MOUNT_ROOT` and `MESA_DUCKLAKE_MOUNT_PREFIX` (default `/`). */
export const layerConfig = Layer.unwrapEffect(
  Effect.map(
    Config.all({
      mountRoot: Config.string("MESA_DUCKLAKE_MOUNT_ROOT"),
      logicalPrefix: Config.string("MESA_DUCKLAKE_MOUNT_PREFIX").pipe(Config.withDefault("/"))
    }),
    layer
  )
)
