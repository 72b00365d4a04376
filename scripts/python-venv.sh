#!/usr/bin/env bash
# Usage: scripts/python-venv.sh <requirements-file> [venv-dir]
# Installs a requirements file into a Python venv (default: ./.venv in the project root), creating the venv with
# `python3 -m venv` if missing. The project's files:
#   scripts/requirements-python.txt   python-irodsclient, for the fake-iRODS cross-check (test/irods/crosscheck.test.ts)
#   scripts/interop/requirements.txt  DuckDB + the official ducklake and postgres extensions (test/interop)
# Idempotent and quiet: a stamp file per requirements file (in the venv) records the requirements it installed, so a
# re-run with unchanged requirements, every pinned `name==version` still installed, does nothing. Several
# requirements files share one venv; each keeps its own stamp.
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 <requirements-file> [venv-dir]" >&2
  exit 2
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
venv="${2:-$root/.venv}"
name="${req#"$root"/}"
stamp="$venv/.${name//\//-}.sha256"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi

# Every `name==version` line of the requirements file is installed at that version.
pinned_installed() {
  "$venv/bin/python" - "$req" <<'PY' 2>/dev/null
import re, sys
from importlib.metadata import version
for line in open(sys.argv[1], encoding="utf-8"):
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)", line)
    if m and version(m.group(1)) != m.group(2):
        sys.exit(1)
PY
}

want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && pinned_installed; then
  exit 0
fi

"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
echo "$want" > "$stamp"
