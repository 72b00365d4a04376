/**
 * Data-object transfer for `IrodsClient`: streamed put (DATA_OBJ_CREATE, WRITE chunks read from disk, CLOSE) and
 * get (OPEN, READ until empty into a temporary file, then rename), unlink, and the server-side checksum.
 * Local file faults become `IrodsError`s named as an iRODS client would name them.
 */
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { open as fsOpen, rename, rm } from "node:fs/promises"
import { basename as localBasename, dirname as localDirname, join as localJoin } from "node:path"
import { ChecksumMismatch } from "../core/errors.js"
import { parseIrodsChecksum } from "../core/checksum.js"
import { API, dataObjInp, KW, OPEN_FLAGS, openedDataObjInp } from "./Api.js"
import type { IrodsClientService } from "./ClientTypes.js"
import type { IrodsConnection } from "./Connection.js"
import { IRODS_ERROR_CODES, IrodsError } from "./Errors.js"
import type { IrodsSession } from "./Session.js"

const localIoError = (operation: string, path: string, cause: unknown) => {
  const code = typeof cause === "object" && cause !== null && "code" in cause ? String(cause.code) : ""
  const name = code === "ENOENT" ? "USER_FILE_DOES_NOT_EXIST" : operation === "get" ? "FILE_WRITE_ERR" : "FILE_READ_ERR"
  return new IrodsError({
    code: IRODS_ERROR_CODES[name],
    irodsName: name,
    operation,
    path,
    detail: `local file: ${cause instanceof Error ? cause.message : String(cause)}`,
    transient: false,
    cause
  })
}

const closeFd = (conn: IrodsConnection, operation: string, path: string, fd: number) =>
  conn.call(operation, path, API.DATA_OBJ_CLOSE, openedDataObjInp({ fd }))

/** Streams a local file into a data object: DATA_OBJ_CREATE, WRITE chunks read from disk, CLOSE. */
const put = ({ chunkSize, withConnection }: IrodsSession) =>
  Effect.fn("IrodsClient.put")(
    function*(localFile: string, path: string, opts?: { readonly overwrite?: boolean }) {
      const overwrite = opts?.overwrite ?? false
      return yield* withConnection((conn) =>
        Effect.scoped(Effect.gen(function*() {
          const file = yield* Effect.acquireRelease(
            Effect.tryPromise({ try: () => fsOpen(localFile, "r"), catch: (e) => localIoError("put", localFile, e) }),
            (fh) => Effect.promise(() => fh.close()).pipe(Effect.ignore)
          )
          const { size } = yield* Effect.tryPromise({
            try: () => file.stat(),
            catch: (e) => localIoError("put", localFile, e)
          })
          const created = yield* conn.call(
            "put",
            path,
            API.DATA_OBJ_CREATE,
            dataObjInp({
              path,
              createMode: 0o644,
              openFlags: OPEN_FLAGS.O_WRONLY | OPEN_FLAGS.O_CREAT | OPEN_FLAGS.O_TRUNC,
              dataSize: size,
              kv: { [KW.DATA_TYPE]: "generic", ...(overwrite ? { [KW.FORCE_FLAG]: "" } : {}) }
            })
          )
          const fd = created.intInfo
          const buffer = Buffer.allocUnsafe(Math.min(chunkSize, Math.max(size, 1)))
          const writeAll = Effect.gen(function*() {
            let offset = 0
            while (offset < size) {
              const { bytesRead } = yield* Effect.tryPromise({
                try: () => file.read(buffer, 0, Math.min(buffer.length, size - offset), offset),
                catch: (e) => localIoError("put", localFile, e)
              })
              if (bytesRead === 0) break
              const chunk = Buffer.from(buffer.subarray(0, bytesRead))
              const written = yield* conn.call(
                "put",
                path,
                API.DATA_OBJ_WRITE,
                openedDataObjInp({ fd, len: bytesRead }),
                chunk
              )
              if (written.intInfo !== bytesRead) {
                return yield* Effect.fail(IrodsError.fromCode(IRODS_ERROR_CODES.SYS_COPY_LEN_ERR, {
                  operation: "put",
                  path,
                  detail: `server wrote ${written.intInfo} of ${bytesRead} bytes at offset ${offset}`
                }))
              }
              offset += bytesRead
            }
            yield* closeFd(conn, "put", path, fd)
            return { size: offset }
          })
          return yield* writeAll.pipe(
            Effect.tapError(() => conn.broken ? Effect.void : Effect.ignore(closeFd(conn, "put", path, fd)))
          )
        }))
      )
    }
  )

/** Streams a data object into a local file: OPEN, READ until empty into a temporary file, then rename. */
const get = ({ chunkSize, withConnection }: IrodsSession) =>
  Effect.fn("IrodsClient.get")(function*(path: string, localFile: string) {
    return yield* withConnection((conn) =>
      Effect.scoped(Effect.gen(function*() {
        const temp = localJoin(localDirname(localFile), `.${localBasename(localFile)}.${randomBytes(6).toString("hex")}.part`)
        const file = yield* Effect.acquireRelease(
          Effect.tryPromise({ try: () => fsOpen(temp, "w"), catch: (e) => localIoError("get", localFile, e) }),
          (fh) => Effect.promise(() => fh.close()).pipe(Effect.ignore)
        )
        yield* Effect.addFinalizer((exit) =>
          exit._tag === "Failure" ? Effect.promise(() => rm(temp, { force: true })).pipe(Effect.ignore) : Effect.void
        )
        const opened = yield* conn.call(
          "get",
          path,
          API.DATA_OBJ_OPEN,
          dataObjInp({ path, openFlags: OPEN_FLAGS.O_RDONLY })
        )
        const fd = opened.intInfo
        const readAll = Effect.gen(function*() {
          let total = 0
          for (;;) {
            const reply = yield* conn.call("get", path, API.DATA_OBJ_READ, openedDataObjInp({ fd, len: chunkSize }))
            if (reply.bs.length === 0) break
            const bytes = reply.bs
            yield* Effect.tryPromise({
              try: () => file.write(bytes, 0, bytes.length, total),
              catch: (e) => localIoError("get", localFile, e)
            })
            total += bytes.length
          }
          yield* closeFd(conn, "get", path, fd)
          return total
        })
        const size = yield* readAll.pipe(
          Effect.tapError(() => conn.broken ? Effect.void : Effect.ignore(closeFd(conn, "get", path, fd)))
        )
        yield* Effect.tryPromise({
          try: async () => {
            await file.sync()
            await rename(temp, localFile)
          },
          catch: (e) => localIoError("get", localFile, e)
        })
        return { size }
      }))
    )
  })

/** DATA_OBJ_UNLINK (`force`, the default, skips the trash). */
const unlink = ({ withConnection }: IrodsSession) =>
  Effect.fn("IrodsClient.unlink")(function*(path: string, opts?: { readonly force?: boolean }) {
    yield* withConnection((conn) =>
      conn.call(
        "unlink",
        path,
        API.DATA_OBJ_UNLINK,
        dataObjInp({ path, kv: (opts?.force ?? true) ? { [KW.FORCE_FLAG]: "" } : {} })
      )
    )
  })

/** DATA_OBJ_CHKSUM; an empty or unrecognised answer is a `ChecksumMismatch`, never a checksum. */
const checksum = ({ withConnection }: IrodsSession) =>
  Effect.fn("IrodsClient.checksum")(function*(path: string, opts?: { readonly force?: boolean }) {
    const raw = yield* withConnection((conn) =>
      conn.call(
        "checksum",
        path,
        API.DATA_OBJ_CHKSUM,
        dataObjInp({ path, kv: opts?.force ? { [KW.FORCE_CHKSUM]: "" } : {} })
      ).pipe(Effect.map((reply) => (reply.msg.length === 0 ? "" : conn.parse(reply.msg).str("myStr"))))
    )
    const parsed = parseIrodsChecksum(raw)
    if (parsed === undefined) {
      return yield* Effect.fail(new ChecksumMismatch({ path, expected: "an md5 or sha2 checksum (unverified)", actual: raw }))
    }
    return parsed
  })

/** The transfer operations over a session. */
export const makeTransfer = (
  session: IrodsSession
): Pick<IrodsClientService, "put" | "get" | "unlink" | "checksum"> => ({
  put: put(session),
  get: get(session),
  unlink: unlink(session),
  checksum: checksum(session)
})
