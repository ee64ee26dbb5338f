#!/usr/bin/env bash
# Install Debian's PostgreSQL server for the loopback stack (infra/stack.py, `make stack-up`, tests/stack).
# Idempotent: does nothing when the server binaries are there. Runs as root (CI) or through passwordless sudo.
# Only the binaries are used: stack.py makes its own cluster (initdb + pg_ctl) in its state folder,
# so the package's system cluster/service is never started (no systemd needed).
# The rest of the stack (moto S3, MLflow, Prefect) is Python, from requirements/main.txt.
set -euo pipefail

if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  echo "postgresql: present ($(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' '))"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "postgresql: no apt-get here; install a PostgreSQL server (initdb, pg_ctl) yourself (tests/stack fails without it)" >&2
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "postgresql: not root and no passwordless sudo; run 'sudo infra/install-stack.sh' (tests/stack fails until then)" >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq postgresql
echo "postgresql: installed ($(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' '))"
