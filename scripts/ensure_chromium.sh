#!/usr/bin/env bash
# The browser tests drive a real chromium (Debian's package, through Playwright's
# executable_path). When it is missing, install it where we can (root with apt-get), otherwise
# say exactly what to install.
set -uo pipefail

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$CHROMIUM" = /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "chromium is missing; installing Debian's package…"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q chromium >/dev/null; then
    apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null
  fi
  [ -x "$CHROMIUM" ] && exit 0
fi
echo "error: the browser tests need chromium at $CHROMIUM." >&2
echo "  Debian: apt-get install chromium (as root)" >&2
echo "  elsewhere: CHROMIUM=/path/to/chrome-or-chromium make test" >&2
exit 1
