#!/usr/bin/env bash
# `make browser-test`: CORS for browser clients of the local stack, shown in a
# real headless browser (browser/browser_test.mjs). Installs what it needs,
# idempotently and at pinned versions:
#   chromium         Debian's package, $CHROMIUM_DEB_VERSION (apt-get, only
#                    when missing or another version). Debian's security
#                    archive keeps only the newest chromium: when the pinned
#                    version is gone, the candidate is installed (or the
#                    installed one kept) with a warning naming both.
#   playwright-core  browser/package.json (exact) + package-lock.json, `npm ci`
#                    into browser/node_modules (git-ignored) when stale. It
#                    never downloads a browser of its own.
#   libnss3-tools    certutil and pk12util (the NSS databases that hold the CA
#                    and the client certificates for Chromium): apt, only when
#                    missing, at the distribution's version.
# Then: stack up, certbound-jwt stopped (case 5: an authorizer that does not
# answer), the test, stack down (KEEP_STACK=1 leaves it running).
# Screenshots: $BROWSER_OUT (default target/browser/*.png).
# Last line: "browser-test: N passed, M failed"; non-zero exit on failure.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

CHROMIUM_DEB_VERSION="${CHROMIUM_DEB_VERSION:-156.0.8078.114-1~deb12u1}"
export CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"
export BROWSER_OUT="${BROWSER_OUT:-$REPO/target/browser}"

bt() { printf 'browser-test: %s\n' "$*" >&2; }

installed_chromium() { dpkg-query -W -f='${Status} ${Version}\n' chromium 2>/dev/null | awk '$3 == "installed" {print $4}'; }

# chromium at $CHROMIUM_DEB_VERSION and libnss3-tools, in one apt-get run,
# only when one is missing (or chromium is another version).
ensure_apt_packages() {
  local have available candidate want=()
  have="$(installed_chromium || true)"
  command -v certutil >/dev/null 2>&1 && command -v pk12util >/dev/null 2>&1 || want+=(libnss3-tools)
  [ "$have" = "$CHROMIUM_DEB_VERSION" ] && [ "${#want[@]}" = 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "needed: chromium=$CHROMIUM_DEB_VERSION (installed: ${have:-none}) and libnss3-tools; sudo apt-get install -y chromium=$CHROMIUM_DEB_VERSION libnss3-tools"
  DEBIAN_FRONTEND=noninteractive apt-get update >>"$STACK_LOGS/apt.log" 2>&1 || die "apt-get update failed; see $STACK_LOGS/apt.log"
  if [ "$have" != "$CHROMIUM_DEB_VERSION" ]; then
    available="$(apt-cache madison chromium 2>/dev/null | awk -F'|' '{gsub(/ /, "", $2); print $2}')"
    if grep -qxF -- "$CHROMIUM_DEB_VERSION" <<<"$available"; then
      want+=("chromium=$CHROMIUM_DEB_VERSION")
    elif [ -n "$have" ]; then
      bt "WARNING: chromium $CHROMIUM_DEB_VERSION is no longer offered by apt; keeping the installed $have"
    else
      candidate="$(apt-cache policy chromium 2>/dev/null | awk '/Candidate:/ {print $2}')"
      [ -n "$candidate" ] && [ "$candidate" != "(none)" ] || die "apt offers no chromium package"
      bt "WARNING: chromium $CHROMIUM_DEB_VERSION is no longer offered by apt; installing the candidate $candidate"
      want+=(chromium)
    fi
  fi
  if [ "${#want[@]}" -gt 0 ]; then
    bt "installing ${want[*]} with apt-get (chromium was: ${have:-none}; log: $STACK_LOGS/apt.log)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends --allow-downgrades "${want[@]}" \
      >>"$STACK_LOGS/apt.log" 2>&1 || die "apt-get install ${want[*]} failed; see $STACK_LOGS/apt.log"
  fi
  [ -x "$CHROMIUM_BIN" ] || die "$CHROMIUM_BIN is missing after installing chromium"
}

ensure_playwright() {
  local dir="$REPO/browser" marker="$REPO/browser/node_modules/.package-lock.json"
  if [ ! -f "$marker" ] || [ "$dir/package-lock.json" -nt "$marker" ] || [ "$dir/package.json" -nt "$marker" ]; then
    bt "npm ci in browser/ (log: $STACK_LOGS/npm-browser.log)"
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund) >>"$STACK_LOGS/npm-browser.log" 2>&1 \
      || die "npm ci in browser/ failed; see $STACK_LOGS/npm-browser.log"
  fi
}

cleanup() {
  local rc=$?
  if [ "${KEEP_STACK:-0}" != 1 ]; then
    "$REPO/scripts/stack-down.sh" >/dev/null 2>&1 || true
  fi
  exit "$rc"
}

mkdir -p "$STACK_LOGS"
ensure_apt_packages
ensure_playwright

trap cleanup EXIT
trap 'exit 130' INT TERM
if ! "$REPO/scripts/stack-up.sh"; then
  echo "browser-test: stack-up failed (logs: $STACK_LOGS)"
  echo "browser-test: 0 passed, 1 failed"
  exit 1
fi
. "$REPO/scripts/env.sh"
# Case 5 needs an authorizer that does not answer: /jwt/'s.
stop certbound-jwt 2>/dev/null

rm -rf "$BROWSER_OUT"
node "$REPO/browser/browser_test.mjs"
