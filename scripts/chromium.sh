#!/usr/bin/env bash
# Installs Debian's Chromium (package `chromium`, binary /usr/bin/chromium) for the report's browser test
# (test/report/report.test.ts drives it with playwright-core). Idempotent: does nothing when /usr/bin/chromium
# exists. Needs root (as on CI and the development machines) or passwordless sudo. Exit 0 when Chromium is there
# afterwards, 1 otherwise.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "chromium.sh: $CHROMIUM is missing and this user cannot run apt-get (not root, no passwordless sudo)" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
# Two installs at once (a test and CI, or two test files) would fight over dpkg's lock: take turns.
exec 9>/tmp/mesa-ducklake-chromium.lock
flock 9
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
echo "chromium.sh: installing Debian's chromium package" >&2
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
if [ ! -x "$CHROMIUM" ]; then
  echo "chromium.sh: apt-get finished but $CHROMIUM is still missing" >&2
  exit 1
fi
"$CHROMIUM" --version >&2 || true
