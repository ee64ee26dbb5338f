#!/usr/bin/env bash
# apt-install.sh PACKAGE PRESENT WHAT: install Debian's PACKAGE unless a path matching the glob
# PRESENT exists. Idempotent. Runs as root (CI) or through passwordless sudo; otherwise it says
# what to run and leaves the tests named by WHAT to fail or skip.
set -euo pipefail
package=$1 present=$2 what=$3

if compgen -G "$present" >/dev/null; then
  echo "$package: present ($(ls -d $present | tr '\n' ' '))"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$package: no apt-get here; install it yourself ($what without it)" >&2
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "$package: not root and no passwordless sudo; run 'sudo $0 $*' ($what until then)" >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq "$package"
echo "$package: installed ($(ls -d $present | tr '\n' ' '))"
