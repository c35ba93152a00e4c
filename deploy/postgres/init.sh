#!/usr/bin/env bash
# Run once by the postgres image on its first start (an empty data volume): one database per
# service, each owned by a role of its own that may connect to nothing else. A service owns its
# data and shares nothing but Kafka with the others; none of them connects as the superuser.
set -euo pipefail

for service in order_api payment_svc inventory_svc; do
    password_var="${service^^}_DB_PASSWORD"
    password="${!password_var:?$password_var is not set}"
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
        -v role="$service" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"role" OWNER :"role";
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"role" TO :"role";
SQL
done
