/**
 * API numbers, constants and the `*_PI` structs the client and the test server exchange (IRODS.md §2-§4;
 * `apiNumber.h`, `rodsPackTable.h`, `apiTable.hpp` of iRODS 4.2.8).
 */
import { el, keyValPair, readKeyValPair, type Struct, type XmlElement } from "./Xml.js"

export const API = {
  DATA_OBJ_CREATE: 601,
  DATA_OBJ_OPEN: 602,
  DATA_OBJ_PUT: 606,
  DATA_OBJ_GET: 608,
  DATA_OBJ_UNLINK: 615,
  OPR_COMPLETE: 626,
  DATA_OBJ_CHKSUM: 629,
  OBJ_STAT: 633,
  DATA_OBJ_CLOSE: 673,
  DATA_OBJ_LSEEK: 674,
  DATA_OBJ_READ: 675,
  DATA_OBJ_WRITE: 676,
  RM_COLL: 679,
  COLL_CREATE: 681,
  GENERAL_ADMIN: 701,
  GEN_QUERY: 702,
  AUTH_REQUEST: 703,
  AUTH_RESPONSE: 704,
  MOD_AVU_METADATA: 706,
  MOD_ACCESS_CONTROL: 707,
  GET_FILE_DESCRIPTOR_INFO: 20000,
  AUTHENTICATION: 110000
} as const

export const OPEN_FLAGS = { O_RDONLY: 0, O_WRONLY: 1, O_RDWR: 2, O_CREAT: 64, O_EXCL: 128, O_TRUNC: 512 } as const
export const OBJ_TYPE = { UNKNOWN: 0, DATA_OBJ: 1, COLL_OBJ: 2 } as const
export const OPR_TYPE = { NONE: 0, PUT: 1, GET: 2 } as const

/** GenQuery column numbers (`rodsGenQuery.h`). */
export const COL = {
  USER_ID: 201,
  USER_NAME: 202,
  USER_TYPE: 203,
  USER_ZONE: 204,
  USER_INFO: 206,
  USER_COMMENT: 207,
  USER_CREATE_TIME: 208,
  USER_MODIFY_TIME: 209,
  D_DATA_ID: 401,
  D_COLL_ID: 402,
  DATA_NAME: 403,
  DATA_REPL_NUM: 404,
  DATA_VERSION: 405,
  DATA_TYPE_NAME: 406,
  DATA_SIZE: 407,
  D_RESC_NAME: 409,
  D_DATA_PATH: 410,
  D_OWNER_NAME: 411,
  D_OWNER_ZONE: 412,
  D_REPL_STATUS: 413,
  D_DATA_STATUS: 414,
  D_DATA_CHECKSUM: 415,
  D_EXPIRY: 416,
  D_MAP_ID: 417,
  D_COMMENTS: 418,
  D_CREATE_TIME: 419,
  D_MODIFY_TIME: 420,
  D_RESC_HIER: 422,
  D_RESC_ID: 423,
  COLL_ID: 500,
  COLL_NAME: 501,
  COLL_PARENT_NAME: 502,
  COLL_OWNER_NAME: 503,
  COLL_OWNER_ZONE: 504,
  COLL_MAP_ID: 505,
  COLL_INHERITANCE: 506,
  COLL_COMMENTS: 507,
  COLL_CREATE_TIME: 508,
  COLL_MODIFY_TIME: 509,
  META_DATA_ATTR_NAME: 600,
  META_DATA_ATTR_VALUE: 601,
  META_DATA_ATTR_UNITS: 602,
  META_DATA_ATTR_ID: 603,
  META_DATA_CREATE_TIME: 604,
  META_DATA_MODIFY_TIME: 605,
  META_COLL_ATTR_NAME: 610,
  META_COLL_ATTR_VALUE: 611,
  META_COLL_ATTR_UNITS: 612,
  META_COLL_ATTR_ID: 613,
  META_COLL_CREATE_TIME: 614,
  META_COLL_MODIFY_TIME: 615,
  /** R_OBJT_ACCESS of data objects (alias r_data_access; the name comes from R_TOKN_MAIN, e.g. "read object"). */
  DATA_ACCESS_TYPE: 700,
  DATA_ACCESS_NAME: 701,
  DATA_TOKEN_NAMESPACE: 702,
  DATA_ACCESS_USER_ID: 703,
  DATA_ACCESS_DATA_ID: 704,
  /** R_OBJT_ACCESS of collections (alias r_coll_access). */
  COLL_ACCESS_TYPE: 710,
  COLL_ACCESS_NAME: 711,
  COLL_TOKEN_NAMESPACE: 712,
  COLL_ACCESS_USER_ID: 713,
  COLL_ACCESS_COLL_ID: 714,
  /** R_USER_GROUP.group_user_id and the group's name (every user and group is also a member of itself). */
  USER_GROUP_ID: 900,
  USER_GROUP_NAME: 901,
  /** Members of the grantees of collection / data object ACLs (joined through R_USER_GROUP, so groups expand). */
  COLL_USER_NAME: 1300,
  COLL_USER_ZONE: 1301,
  DATA_USER_NAME: 1310,
  DATA_USER_ZONE: 1311
} as const

/**
 * Access levels as R_TOKN_MAIN stores them (namespace `access_type`, 4.2.8 `icatSysInserts.sql`); a user's level on
 * an object is the highest token id over the ACL rows of the user and of the groups the user is in.
 */
export const ACCESS_TYPE = {
  null: 1000,
  "read metadata": 1040,
  "read object": 1050,
  "create metadata": 1070,
  "modify metadata": 1080,
  "delete metadata": 1090,
  "modify object": 1120,
  "delete object": 1130,
  own: 1200
} as const

/** GenQuery select flags and options. */
export const GENQUERY = {
  SELECT: 1,
  ORDER_BY: 0x400,
  ORDER_BY_DESC: 0x800,
  RETURN_TOTAL_ROW_COUNT: 0x20,
  NO_DISTINCT: 0x40,
  AUTO_CLOSE: 0x100,
  UPPER_CASE_WHERE: 0x200,
  MAX_SQL_ROWS: 256
} as const

export const KW = {
  FORCE_FLAG: "forceFlag",
  DATA_TYPE: "dataType",
  DATA_INCLUDED: "dataIncluded",
  DATA_SIZE: "dataSize",
  OPR_TYPE: "oprType",
  RECURSIVE_OPR: "recursiveOpr",
  FORCE_CHKSUM: "forceChksum",
  VERIFY_CHKSUM: "verifyChksum",
  REG_CHKSUM: "regChksum",
  ZONE: "zone"
} as const

// ---- requests ----

export const startupPack = (p: {
  readonly user: string
  readonly zone: string
  readonly relVersion: string
  readonly option: string
}): XmlElement =>
  el("StartupPack_PI", [
    ["irodsProt", 1],
    ["reconnFlag", 0],
    ["connectCnt", 0],
    ["proxyUser", p.user],
    ["proxyRcatZone", p.zone],
    ["clientUser", p.user],
    ["clientRcatZone", p.zone],
    ["relVersion", p.relVersion],
    ["apiVersion", "d"],
    ["option", p.option]
  ])

export const dataObjInp = (p: {
  readonly path: string
  readonly createMode?: number
  readonly openFlags?: number
  readonly offset?: number
  readonly dataSize?: number
  readonly numThreads?: number
  readonly oprType?: number
  readonly kv?: Readonly<Record<string, string>>
}): XmlElement =>
  el("DataObjInp_PI", [
    ["objPath", p.path],
    ["createMode", p.createMode ?? 0],
    ["openFlags", p.openFlags ?? 0],
    ["offset", p.offset ?? 0],
    ["dataSize", p.dataSize ?? 0],
    ["numThreads", p.numThreads ?? 0],
    ["oprType", p.oprType ?? 0],
    ["KeyValPair_PI", keyValPair(p.kv)]
  ])

export const openedDataObjInp = (p: {
  readonly fd: number
  readonly len?: number
  readonly whence?: number
  readonly offset?: number
}): XmlElement =>
  el("OpenedDataObjInp_PI", [
    ["l1descInx", p.fd],
    ["len", p.len ?? 0],
    ["whence", p.whence ?? 0],
    ["oprType", 0],
    ["offset", p.offset ?? 0],
    ["bytesWritten", 0],
    ["KeyValPair_PI", keyValPair()]
  ])

export const collInp = (path: string, kv: Readonly<Record<string, string>> = {}): XmlElement =>
  el("CollInpNew_PI", [["collName", path], ["flags", 0], ["oprType", 0], ["KeyValPair_PI", keyValPair(kv)]])

/**
 * `modAccessControlInp_PI{recursiveFlag, accessLevel, userName, zone, path}` (MOD_ACCESS_CONTROL 707). 4.2.8 accepts
 * the levels `null`, `read`, `write`, `own`, `inherit`, `noinherit`, optionally prefixed with `admin:` (rodsadmin only).
 */
export const modAccessControlInp = (p: {
  readonly recursive: boolean
  readonly accessLevel: string
  readonly userName: string
  readonly zone: string
  readonly path: string
}): XmlElement =>
  el("modAccessControlInp_PI", [
    ["recursiveFlag", p.recursive ? 1 : 0],
    ["accessLevel", p.accessLevel],
    ["userName", p.userName],
    ["zone", p.zone],
    ["path", p.path]
  ])

/** `generalAdminInp_PI{arg0..arg9}` (GENERAL_ADMIN 701, rodsadmin only). */
export const generalAdminInp = (args: ReadonlyArray<string>): XmlElement =>
  el("generalAdminInp_PI", args.slice(0, 10).map((a, i) => [`arg${i}`, a] as const))

/** `ModAVUMetadataInp_PI{arg0..arg9}`, without the KeyValPair_PI that only 4.3 knows. */
export const modAvuInp = (args: ReadonlyArray<string>): XmlElement =>
  el("ModAVUMetadataInp_PI", args.slice(0, 10).map((a, i) => [`arg${i}`, a] as const))

export interface GenQueryInput {
  readonly select: ReadonlyArray<readonly [column: number, flags: number]>
  readonly where: ReadonlyArray<readonly [column: number, condition: string]>
  readonly maxRows?: number
  readonly continueInx?: number
  readonly options?: number
  readonly kv?: Readonly<Record<string, string>>
}

export const genQueryInp = (q: GenQueryInput): XmlElement =>
  el("GenQueryInp_PI", [
    ["maxRows", q.maxRows ?? GENQUERY.MAX_SQL_ROWS],
    ["continueInx", q.continueInx ?? 0],
    ["partialStartIndex", 0],
    ["options", q.options ?? 0],
    ["KeyValPair_PI", keyValPair(q.kv)],
    ["InxIvalPair_PI", el("InxIvalPair_PI", [
      ["iiLen", q.select.length],
      ["inx", q.select.map(([c]) => c)],
      ["ivalue", q.select.map(([, f]) => f)]
    ])],
    ["InxValPair_PI", el("InxValPair_PI", [
      ["isLen", q.where.length],
      ["inx", q.where.map(([c]) => c)],
      ["svalue", q.where.map(([, v]) => v)]
    ])]
  ])

/** Reads a GenQueryInp_PI (server side). */
export const readGenQueryInp = (s: Struct): Required<Omit<GenQueryInput, "kv">> & { kv: Record<string, string> } => {
  const sel = s.struct("InxIvalPair_PI")
  const where = s.struct("InxValPair_PI")
  const selInx = sel?.ints("inx") ?? []
  const selVal = sel?.ints("ivalue") ?? []
  const whereInx = where?.ints("inx") ?? []
  const whereVal = where?.strs("svalue") ?? []
  return {
    maxRows: s.int("maxRows"),
    continueInx: s.int("continueInx"),
    options: s.int("options"),
    kv: readKeyValPair(s.struct("KeyValPair_PI")),
    select: selInx.map((c, i) => [c, selVal[i] ?? 1] as const),
    where: whereInx.map((c, i) => [c, whereVal[i] ?? ""] as const)
  }
}

export interface GenQueryOut {
  readonly rowCnt: number
  readonly continueInx: number
  readonly totalRowCount: number
  /** Row-major values, one array per row, in select order. */
  readonly rows: ReadonlyArray<ReadonlyArray<string>>
}

/** GenQueryOut_PI is column-major: one SqlResult_PI per selected column, `value` repeated rowCnt times. */
export const readGenQueryOut = (s: Struct): GenQueryOut => {
  const rowCnt = s.int("rowCnt")
  const columns = s.structs("SqlResult_PI").map((c) => c.strs("value"))
  const rows: Array<Array<string>> = []
  for (let r = 0; r < rowCnt; r++) rows.push(columns.map((col) => col[r] ?? ""))
  return { rowCnt, continueInx: s.int("continueInx"), totalRowCount: s.int("totalRowCount"), rows }
}

export const genQueryOut = (p: {
  readonly columns: ReadonlyArray<number>
  readonly rows: ReadonlyArray<ReadonlyArray<string>>
  readonly continueInx: number
  readonly totalRowCount: number
}): XmlElement =>
  el("GenQueryOut_PI", [
    ["rowCnt", p.rows.length],
    ["attriCnt", p.columns.length],
    ["continueInx", p.continueInx],
    ["totalRowCount", p.totalRowCount],
    ...p.columns.map((col, i) =>
      ["SqlResult_PI", el("SqlResult_PI", [
        ["attriInx", col],
        ["reslen", Math.max(1, ...p.rows.map((r) => Buffer.byteLength(r[i] ?? "") + 1))],
        ["value", p.rows.map((r) => r[i] ?? "")]
      ])] as const
    )
  ])

/** `RError_PI{count, RErrMsg_PI{status, msg}*}`. */
export const rError = (errors: ReadonlyArray<{ readonly status: number; readonly msg: string }>): XmlElement =>
  el("RError_PI", [
    ["count", errors.length],
    ...errors.map((e) => ["RErrMsg_PI", el("RErrMsg_PI", [["status", e.status], ["msg", e.msg]])] as const)
  ])

export const readRError = (s: Struct): string =>
  s.structs("RErrMsg_PI").map((m) => m.str("msg")).filter((m) => m !== "").join("; ")

export interface ObjStat {
  readonly objSize: number
  readonly objType: number
  readonly dataId: number
  readonly checksum: string
  readonly ownerName: string
  readonly ownerZone: string
  readonly createTime: Date
  readonly modifyTime: Date
}

const epoch = (s: string): Date => new Date(Number(s.trim() || "0") * 1000)

export const readObjStat = (s: Struct): ObjStat => ({
  objSize: s.int("objSize"),
  objType: s.int("objType"),
  dataId: Number(s.str("dataId") || "0"),
  checksum: s.str("chksum"),
  ownerName: s.str("ownerName"),
  ownerZone: s.str("ownerZone"),
  createTime: epoch(s.str("createTime")),
  modifyTime: epoch(s.str("modifyTime"))
})

/** iRODS times are 11-digit zero-padded epoch seconds. */
export const irodsTime = (d: Date): string => Math.floor(d.getTime() / 1000).toString().padStart(11, "0")

export const parseIrodsTime = epoch

/** `rods4.2.8` → [4, 2, 8]. */
export const parseRelVersion = (rel: string): readonly [number, number, number] => {
  const m = /(\d+)\.(\d+)\.(\d+)/.exec(rel)
  return m === null ? [0, 0, 0] : [Number(m[1]), Number(m[2]), Number(m[3])]
}

export const versionAtLeast = (v: readonly [number, number, number], min: readonly [number, number, number]) =>
  v[0] !== min[0] ? v[0] > min[0] : v[1] !== min[1] ? v[1] > min[1] : v[2] >= min[2]
