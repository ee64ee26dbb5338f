#!/usr/bin/env bash
# Install Debian's Chromium at /usr/bin/chromium for the browser test (tests/serving/test_browser.py).
# Idempotent: does nothing when it is already there. Runs as root (CI) or through passwordless sudo.
# Playwright drives this system browser; `playwright install` is not used (it downloads its own).
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  echo "chromium: present ($(/usr/bin/chromium --version 2>/dev/null || echo 'version unknown'))"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium: no apt-get here; install Chromium at /usr/bin/chromium yourself (the browser test skips without it)" >&2
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "chromium: not root and no passwordless sudo; run 'sudo infra/install-browser.sh' (the browser test skips until then)" >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq chromium
echo "chromium: installed ($(/usr/bin/chromium --version 2>/dev/null || echo 'version unknown'))"
