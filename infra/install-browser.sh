#!/usr/bin/env bash
# Install Debian's Chromium at /usr/bin/chromium for the browser test (tests/serving/test_browser.py).
# Playwright drives this system browser; `playwright install` is not used (it downloads its own).
exec bash "$(dirname "$0")/apt-install.sh" chromium /usr/bin/chromium "the browser test skips"
