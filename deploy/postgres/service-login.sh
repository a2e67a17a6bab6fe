#!/bin/sh
# Run once by the postgres image on a new data directory
# (/docker-entrypoint-initdb.d): the login role the muckard services
# connect as. It gets muckard_app, and nothing else, from `muckard migrate`
# (MUCKARD_APP_LOGINS); the owner, POSTGRES_USER, only migrates.
set -eu
psql -v ON_ERROR_STOP=1 -v password="$SERVICE_DB_PASSWORD" \
  --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE muckard_service LOGIN PASSWORD :'password';
SQL
