/**
 * What Backup keeps on this machine is owner-only: dumps, manifests and password files 0600, their temporary
 * directories 0700 (whatever the umask), and the same modes on a backups collection when the storage is a mount.
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import { Effect, Option } from "effect"
import type { LakeStorageService } from "../storage/LakeStorage.js"

/** Owner-only modes for what Backup writes on this machine (dumps, manifests, password files; their directories). */
export const PRIVATE_FILE = 0o600
export const PRIVATE_DIR = 0o700

/**
 * A local temporary directory only we can enter (0700, whatever the umask), removed with the scope: it holds
 * password files, dumps and downloaded backups.
 */
export const privateTempDir = (fs: FileSystem.FileSystem, prefix: string) =>
  fs.makeTempDirectoryScoped({ prefix }).pipe(
    Effect.tap((dir) => fs.chmod(dir, PRIVATE_DIR)),
    Effect.orDie
  )

/**
 * Owner-only modes on what a backup stores, where the storage is a mount on this machine: another local user
 * must not read the history in a dump. Where the storage is iRODS itself (no local path), iRODS ACLs govern
 * who reads the backups collection (it inherits the project's), and there is nothing to set here. A mount that
 * cannot change modes (some FUSE mounts) is reported, not fatal: its own permissions govern.
 */
export const restrictStored = (fs: FileSystem.FileSystem, storage: LakeStorageService, path: string, mode: number) =>
  Option.match(storage.localPath(path), {
    onNone: () => Effect.void,
    onSome: (local) =>
      fs.chmod(local, mode).pipe(
        Effect.catchAll((e) =>
          Effect.logWarning(`could not set mode ${mode.toString(8)} on ${path}: ${e.message}`)
        )
      )
  })
