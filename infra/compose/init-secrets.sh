#!/usr/bin/env bash
# Writes the compose stack's secrets, once: stead.env (Stead's database URL, token signing key
# and first admin) and secrets/ (PostgreSQL's and Grafana's passwords). Random values; existing
# files are kept. None of them is committed (see .gitignore).
set -euo pipefail
cd "$(dirname "$0")"
umask 077
random() { head -c 32 /dev/urandom | base64 | tr -d '/+=' | head -c "$1"; }
mkdir -p secrets
[ -f secrets/postgres_password ] || random 32 > secrets/postgres_password
[ -f secrets/grafana_admin_password ] || random 24 > secrets/grafana_admin_password
if [ ! -f stead.env ]; then
  cat > stead.env <<ENV
STEAD_DATABASE_URL=postgres://stead:$(cat secrets/postgres_password)@postgres:5432/stead
STEAD_JWT_SECRET=$(random 40)
STEAD_BOOTSTRAP_ADMIN_EMAIL=admin@stead.local
STEAD_BOOTSTRAP_ADMIN_PASSWORD=$(random 24)
ENV
fi
# Compose secrets are bind-mounted with these files' modes; the containers run as other users.
chmod 0644 secrets/postgres_password secrets/grafana_admin_password
echo "secrets in $(pwd)/stead.env and $(pwd)/secrets/ (the first admin's password is in stead.env)"
