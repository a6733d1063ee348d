#!/bin/sh
# Make the cluster on first start (password and database from the environment, as the
# official image does), then become the server, as the postgres user, listening on all
# addresses of the container.
set -eu

mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"

as_postgres() {
    setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    password_file="$(mktemp)"
    printf '%s\n' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set, as for the official image}" > "$password_file"
    chown postgres "$password_file"
    as_postgres initdb --username=postgres --pwfile="$password_file" \
        --auth-local=trust --auth-host=scram-sha-256 --pgdata="$PGDATA" >/dev/null
    rm -f "$password_file"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    database="${POSTGRES_DB:-postgres}"
    if [ "$database" != postgres ]; then
        echo "CREATE DATABASE \"$database\";" | as_postgres postgres --single -D "$PGDATA" postgres >/dev/null
    fi
fi

exec setpriv --reuid=postgres --regid=postgres --init-groups -- \
    postgres -D "$PGDATA" -c listen_addresses='*'
