#!/usr/bin/env bash
# Installs scripts/interop/requirements.txt (DuckDB + the official ducklake and postgres extensions, from PyPI) into
# the project's ./.venv, creating it with `python3 -m venv` if missing. Idempotent and quiet: a stamp file records the
# requirements it installed, so a re-run with unchanged requirements does nothing. Shares ./.venv with
# scripts/python-venv.sh (its own stamp file is left alone).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.venv"
req="$root/scripts/interop/requirements.txt"
stamp="$venv/.interop-requirements.sha256"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi

want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
  && "$venv/bin/python" -c "import duckdb, duckdb_extension_ducklake, duckdb_extension_postgres_scanner" 2>/dev/null; then
  exit 0
fi

"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
echo "$want" > "$stamp"
