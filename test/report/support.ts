/**
 * The report tests' shared parts: Debian's Chromium (installed by scripts/chromium.sh when missing; a test that
 * needs it fails, never skips, when it cannot be had), a headless browser through playwright-core, what a report
 * page shows read back from the browser's DOM, and where artifacts go (.ci/results/report/, gitignored and kept
 * by CI).
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { type Browser, chromium, type Page } from "playwright-core"

export const REPO = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), "../..")
export const CHROMIUM = "/usr/bin/chromium"
/** Where the report tests leave their page and screenshot (CI keeps .ci/results). */
export const ARTIFACTS = nodePath.join(REPO, ".ci/results/report")

/** Chromium, installed through the project's own script when missing; throws (the test fails) when it cannot be. */
export const ensureChromium = (): void => {
  if (fs.existsSync(CHROMIUM)) return
  const r = spawnSync("bash", [nodePath.join(REPO, "scripts/chromium.sh")], { encoding: "utf8", timeout: 15 * 60_000 })
  if (r.status !== 0 || !fs.existsSync(CHROMIUM)) {
    throw new Error(
      `the report's browser test needs Debian's Chromium at ${CHROMIUM}; scripts/chromium.sh could not install it ` +
        `(exit ${r.status ?? r.signal}):\n${r.stderr}${r.stdout}`
    )
  }
}

/**
 * Headless Chromium as root on a machine without a network: no sandbox (root), and none of Chromium's own
 * background connections (updates, sync, safe browsing), which would otherwise show as requests.
 */
export const launchChromium = (): Promise<Browser> =>
  chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-default-apps"
    ]
  })

export interface Opened {
  readonly page: Page
  /** Every request the page made (its own file:// load included). */
  readonly requests: Array<string>
  /** alert/confirm/prompt dialogs opened (an injected script would open one). */
  readonly dialogs: Array<string>
  /** Console errors and uncaught page errors (a CSP violation logs one). */
  readonly errors: Array<string>
}

export const openPage = async (browser: Browser, file: string): Promise<Opened> => {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } })
  const requests: Array<string> = []
  const dialogs: Array<string> = []
  const errors: Array<string> = []
  page.on("request", (r) => requests.push(r.url()))
  page.on("dialog", (d) => {
    dialogs.push(d.message())
    void d.dismiss()
  })
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text())
  })
  page.on("pageerror", (e) => errors.push(String(e)))
  await page.goto(pathToFileURL(file).href, { waitUntil: "load" })
  return { page, requests, dialogs, errors }
}

/** What the page shows, read from the browser's DOM. */
export interface PageSummary {
  readonly title: string
  readonly elementCounts: { readonly script: number; readonly img: number; readonly i: number; readonly iframe: number; readonly link: number }
  readonly attributes: ReadonlyArray<{
    readonly name: string
    readonly dataAttribute: string | null
    readonly bars: ReadonlyArray<{ readonly fill: string | null; readonly title: string }>
    readonly marks: ReadonlyArray<string>
    readonly ticks: ReadonlyArray<string>
  }>
  readonly actorLegend: ReadonlyArray<{ readonly name: string; readonly color: string | null }>
  readonly kindLegend: ReadonlyArray<string>
  readonly events: ReadonlyArray<ReadonlyArray<string>>
  readonly eventKinds: ReadonlyArray<string | null>
  readonly snapshots: ReadonlyArray<ReadonlyArray<string>>
  readonly counts: Readonly<Record<string, string>>
  readonly perDay: ReadonlyArray<string>
  readonly topAttributes: ReadonlyArray<string>
  readonly topActors: ReadonlyArray<string>
  readonly sections: ReadonlyArray<string>
}

/** Runs in the page (the test compiles without the DOM's types, hence `any`). */
const readPage = (): PageSummary => {
  const doc = (globalThis as any).document
  const all = (root: any, sel: string): Array<any> => Array.from(root.querySelectorAll(sel))
  const text = (el: any): string => (el?.textContent ?? "") as string
  const swatches = (sel: string) =>
    all(doc, `${sel} span`).filter((s) => s.querySelector("svg") !== null)
  const rows = (sel: string) => all(doc, sel).map((tr) => all(tr, "td").map(text))
  const titles = (sel: string) => all(doc, sel).map(text)
  return {
    title: doc.title,
    elementCounts: {
      script: all(doc, "script").length,
      img: all(doc, "img").length,
      i: all(doc, "i").length,
      iframe: all(doc, "iframe").length,
      link: all(doc, "link").length
    },
    attributes: all(doc, "section.attribute").map((s) => ({
      name: text(s.querySelector("h3")),
      dataAttribute: s.getAttribute("data-attribute"),
      bars: all(s, 'g[aria-label="bar"] rect').map((r) => ({ fill: r.getAttribute("fill"), title: text(r.querySelector("title")) })),
      marks: all(s, 'g[aria-label="dot"] path').map((p) => text(p.querySelector("title"))),
      ticks: all(s, 'g[aria-label="y-axis tick label"] text').map(text)
    })),
    actorLegend: swatches('[data-legend="actors"]').map((s) => ({
      name: text(s),
      color: s.querySelector("svg").getAttribute("fill")
    })),
    kindLegend: swatches('[data-legend="kinds"]').map(text),
    events: rows("table.events tbody tr"),
    eventKinds: all(doc, "table.events tbody tr").map((tr) => tr.getAttribute("data-kind")),
    snapshots: rows("table.snapshots tbody tr"),
    counts: Object.fromEntries(all(doc, "dl.counts > div").map((d) => [d.getAttribute("data-count"), text(d.querySelector("dd"))])),
    perDay: titles('[data-chart="per-day"] g[aria-label="rect"] rect title'),
    topAttributes: titles('[data-chart="top-attributes"] g[aria-label="bar"] rect title'),
    topActors: titles('[data-chart="top-actors"] g[aria-label="bar"] rect title'),
    sections: all(doc, "main > section").map((s) => s.id)
  }
}

export const summarise = (page: Page): Promise<PageSummary> => page.evaluate(readPage)
