/**
 * The symbolic-link check of the mounted storage: is a local path below the mount root exactly its own real path?
 * One generator drives both a synchronous probe (for `localPath`, synchronous by contract) and an asynchronous one,
 * so the two checks cannot drift apart. Also the no-follow SHA-256 of a stored file.
 */
import { createHash } from "node:crypto"
import * as nodeFs from "node:fs"
import * as nodePath from "node:path"
import type { Checksum } from "./LakeStorage.js"

/** The error code of a failed system call. */
export const codeOf = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code

/** The two system calls a link check needs, synchronous or not (`localPath` is synchronous by contract). */
interface LinkProbe<F> {
  readonly realpath: (p: string) => F
  readonly lstat: (p: string) => F
}

/**
 * Why `local` (below `root`) is not its own real path, or undefined when it is. Walks up from `local` to the deepest
 * path that exists and compares its real path with its lexical one (one `realpath` when the path exists, which is
 * the common case). An absent path is fine (nothing below it exists either) unless it is a dangling link: `lstat`
 * sees those. Written once as a generator so the synchronous and the asynchronous check cannot drift apart.
 */
function* linkCheck<F>(root: string, local: string, probe: LinkProbe<F>): Generator<F, string | undefined, any> {
  for (let p = local; p !== root && p !== nodePath.dirname(p); p = nodePath.dirname(p)) {
    // An entry that appears between realpath and lstat (another writer renaming its copy into place) is resolved
    // again, a few times; only a symbolic link that resolves to nothing is refused as dangling.
    for (let attempt = 0; ; attempt++) {
      const real = yield probe.realpath(p)
      if (typeof real === "string") {
        return real === p ? undefined : `${p} is, or lies under, a symbolic link (it resolves to ${real})`
      }
      if (real.code !== "ENOENT" && real.code !== "ENOTDIR") return `${p} cannot be resolved (${real.code})`
      const link = yield probe.lstat(p)
      if (link === "link") return `${p} is a symbolic link that resolves to nothing`
      if (link === "entry") {
        if (attempt < 3) continue
        return `${p} keeps changing while it is resolved`
      }
      if (link.code !== "ENOENT" && link.code !== "ENOTDIR") return `${p} cannot be examined (${link.code})`
      break
    }
  }
  return undefined
}

/** A probe result: the real path, what lstat found (a symbolic link, or another entry), or the error code. */
type Probed = string | "link" | "entry" | { readonly code: string | undefined }

export const syncProbe: LinkProbe<Probed> = {
  realpath: (p) => {
    try {
      return nodeFs.realpathSync.native(p)
    } catch (e) {
      return { code: codeOf(e) }
    }
  },
  lstat: (p) => {
    try {
      return nodeFs.lstatSync(p).isSymbolicLink() ? "link" : "entry"
    } catch (e) {
      return { code: codeOf(e) }
    }
  }
}

const asyncProbe: LinkProbe<Promise<Probed>> = {
  realpath: (p) => nodeFs.promises.realpath(p).then((r) => r, (e) => ({ code: codeOf(e) })),
  lstat: (p) =>
    nodeFs.promises.lstat(p).then((st) => (st.isSymbolicLink() ? "link" as const : "entry" as const), (e) => ({ code: codeOf(e) }))
}

export const runSync = (root: string, local: string): string | undefined => {
  const it = linkCheck(root, local, syncProbe)
  for (let step = it.next(); ; ) {
    if (step.done === true) return step.value
    step = it.next(step.value)
  }
}

export const runAsync = async (root: string, local: string): Promise<string | undefined> => {
  const it = linkCheck(root, local, asyncProbe)
  for (let step = it.next(); ; ) {
    if (step.done === true) return step.value
    step = it.next(await step.value)
  }
}

/**
 * A stored file read back (a put's copy, or for `checksum`): its SHA-256 and size, opened without following a link
 * in its last component (O_NOFOLLOW: ELOOP). Two steps through libuv's pool for a small file (open; then its size and its bytes side
 * by side: one read of a buffer one byte larger than the size, so a read that fills only the size has met the end);
 * the descriptor is closed without waiting. A large file, or one that changed size meanwhile, is streamed.
 */
export const readBackNoFollow = async (file: string): Promise<{ readonly checksum: Checksum; readonly size: number }> => {
  const handle = await nodeFs.promises.open(file, nodeFs.constants.O_RDONLY | (nodeFs.constants.O_NOFOLLOW ?? 0))
  let closing = false
  try {
    const guess = 64 * 1024
    const buffer = Buffer.allocUnsafe(guess + 1)
    const [{ size }, { bytesRead }] = await Promise.all([handle.stat(), handle.read(buffer, 0, guess + 1, 0)])
    if (bytesRead === size && size <= guess) {
      closing = true
      handle.close().catch(() => undefined)
      return { checksum: { algorithm: "sha256", hex: createHash("sha256").update(buffer.subarray(0, size)).digest("hex") }, size }
    }
    const h = createHash("sha256")
    let total = 0
    for await (const chunk of handle.createReadStream({ autoClose: false, start: 0 })) {
      h.update(chunk as Buffer)
      total += (chunk as Buffer).length
    }
    return { checksum: { algorithm: "sha256", hex: h.digest("hex") }, size: total }
  } finally {
    if (!closing) await handle.close()
  }
}
