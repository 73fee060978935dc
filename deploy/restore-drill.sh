#!/usr/bin/env bash
# Restore drill: restore a backup made by backup.sh into a scratch directory
# (and, for PostgreSQL, a scratch database), then check it. Usage:
#
#   deploy/restore-drill.sh BACKUP_DIR
#
# It starts nothing: no server, no worker, no listening socket. It
#  1. checks every file against MANIFEST.sha256;
#  2. restores the key file, the database and the local blobs;
#  3. runs `evault-server doctor` on the restored copy;
#  4. checks the log: every entry hashes to its leaf hash, the latest
#     checkpoint is signed by the key file and its root hash is the root of
#     the restored entries; and every item's header, payload and manifest blob
#     exists with its SHA-256 (local storage; S3 backups are not checked).
# Exit status 0 only if every step passed. Nothing secret is printed.
#
# PostgreSQL: the scratch database is created and dropped through
# EVAULT_DRILL_PG_URL (default postgresql://postgres@127.0.0.1:5432/postgres),
# a libpq URL of a role that may create databases.
# Set EVAULT_DRILL_KEEP=1 to keep the scratch directory for a look.
set -euo pipefail
umask 077

die() {
	printf 'drill: FAIL: %s\n' "$*" >&2
	exit 1
}

[[ $# -eq 1 ]] || die "usage: restore-drill.sh BACKUP_DIR"
backup=$(cd "$1" && pwd) || die "no backup directory $1"
[[ -f $backup/MANIFEST.sha256 ]] || die "$backup has no MANIFEST.sha256"

evault_server=$(command -v evault-server) || die "evault-server is not on PATH (activate the venv)"
python=${EVAULT_PYTHON:-$(dirname "$evault_server")/python}

printf 'drill: checking files against MANIFEST.sha256\n'
(cd "$backup" && sha256sum --check --quiet --strict MANIFEST.sha256) ||
	die "backup files do not match their manifest"

db_kind=$(sed -n 's/^database //p' "$backup/backup.info")
storage=$(sed -n 's/^storage //p' "$backup/backup.info")

scratch=$(mktemp -d "${TMPDIR:-/tmp}/evault-drill.XXXXXXXX")
data=$scratch/data
pg_admin=${EVAULT_DRILL_PG_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
pg_scratch=""

cleanup() {
	if [[ -n $pg_scratch ]]; then
		psql --quiet --dbname="$pg_admin" \
			--command="DROP DATABASE IF EXISTS \"$pg_scratch\" WITH (FORCE)" >/dev/null 2>&1 || true
	fi
	if [[ ${EVAULT_DRILL_KEEP:-0} == 1 ]]; then
		printf 'drill: kept %s\n' "$scratch"
	else
		rm -rf -- "$scratch"
	fi
}
trap cleanup EXIT

mkdir -m 700 "$data"
cp -- "$backup/server.key" "$data/server.key"
chmod 600 "$data/server.key"
if [ -e "$backup/peer.key" ]; then
	cp -- "$backup/peer.key" "$data/peer.key"
	chmod 600 "$data/peer.key"
fi

case $db_kind in
sqlite)
	cp -- "$backup/database.sqlite" "$data/vault.db"
	database_url="sqlite:///$data/vault.db"
	;;
postgresql)
	pg_scratch="evault_drill_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
	psql --quiet --dbname="$pg_admin" --command="CREATE DATABASE \"$pg_scratch\"" >/dev/null ||
		die "cannot create the scratch database (EVAULT_DRILL_PG_URL)"
	pg_restore_url=$("$python" -c '
import sys
from sqlalchemy.engine import make_url
print(make_url(sys.argv[1]).set(database=sys.argv[2]).render_as_string(hide_password=False))
' "$pg_admin" "$pg_scratch")
	pg_restore --no-owner --exit-on-error --dbname="$pg_restore_url" "$backup/database.pgdump" ||
		die "pg_restore failed"
	database_url=${pg_restore_url/postgresql:/postgresql+psycopg:}
	;;
*)
	die "backup.info names no known database"
	;;
esac

if [[ $storage == local ]]; then
	mkdir -m 700 "$data/blobs"
	tar -C "$data/blobs" -xf "$backup/blobs.tar"
else
	printf 'drill: WARN: blobs are in S3 and not in the backup; their check is skipped\n'
fi

printf 'drill: restored into %s\n' "$scratch"

# Only the restored copy: no mail, no worker, no S3, no public address.
drill_env=(
	env -u EVAULT_STORAGE_ROOT -u EVAULT_SMTP_HOST -u EVAULT_S3_BUCKET -u EVAULT_PUBLIC_URL
	-u EVAULT_SMTP_PASSWORD_FILE -u EVAULT_S3_STAGING_DIR
	EVAULT_DATA_DIR="$data"
	EVAULT_DATABASE_URL="$database_url"
	EVAULT_KEY_FILE="$data/server.key"
	EVAULT_STORAGE=local
	EVAULT_RUN_WORKER=0
)

printf 'drill: evault-server doctor\n'
"${drill_env[@]}" "$evault_server" doctor | sed 's/^/drill:   /' ||
	die "evault-server doctor found a failure in the restored copy"

printf 'drill: checking the log and the blobs\n'
"${drill_env[@]}" EVAULT_DRILL_STORAGE="$storage" "$python" - <<'PY' ||
import hashlib
import os
import sys
from pathlib import Path

from sqlalchemy import select

from server.config import Config
from server.db import make_engine, make_sessionmaker, transaction
from server.keyfile import load_key_file
from server.models import Item, LogEntry
from server.services.log import latest_checkpoint
from vault.errors import VaultError
from vault.merkle import EMPTY_ROOT, leaf_hash, node_hash
from vault.note import open_checkpoint


def root(hashes: list[bytes]) -> bytes:
    """RFC 6962 MTH of the leaf hashes."""
    if not hashes:
        return EMPTY_ROOT
    if len(hashes) == 1:
        return hashes[0]
    split = 1 << ((len(hashes) - 1).bit_length() - 1)
    return node_hash(root(hashes[:split]), root(hashes[split:]))


config = Config.from_env()
keys = load_key_file(config.key_file)
failures: list[str] = []
engine = make_engine(config.database_url)
try:
    with transaction(make_sessionmaker(engine)) as session:
        latest = latest_checkpoint(session)
        entries = list(session.scalars(select(LogEntry).order_by(LogEntry.idx)))
        items = list(session.scalars(select(Item)))
finally:
    engine.dispose()
for position, entry in enumerate(entries):
    if entry.idx != position:
        failures.append(f"log entry {position} is missing")
        break
    if leaf_hash(entry.data) != entry.leaf_hash:
        failures.append(f"log entry {entry.idx} does not hash to its leaf hash")
if latest is None:
    failures.append("the log has no checkpoint")
else:
    try:
        checkpoint = open_checkpoint(
            latest.note.encode("utf-8"), keys.log_verifier, origin=keys.origin
        )
    except VaultError as exc:
        failures.append(f"the latest checkpoint does not verify with the key file: {exc}")
    else:
        leaves = [entry.leaf_hash for entry in entries[: checkpoint.size]]
        if len(leaves) != checkpoint.size or root(leaves) != checkpoint.root_hash:
            failures.append(
                f"the checkpoint of size {checkpoint.size} does not match the restored entries"
            )
        else:
            print(f"drill:   log: {len(entries)} entries; checkpoint of size "
                  f"{checkpoint.size} verifies with the key file")
if os.environ["EVAULT_DRILL_STORAGE"] == "local":
    blobs = config.blob_root / "blobs"
    checked = 0
    for item in items:
        wanted = [(item.header_key, item.header_size), (item.payload_key, item.payload_size)]
        if item.manifest_key is not None:
            wanted.append((item.manifest_key, item.manifest_size))
        for key, size in wanted:
            path = blobs / key[:2] / key
            try:
                digest = hashlib.sha256()
                length = 0
                with path.open("rb") as handle:
                    while block := handle.read(1 << 20):
                        digest.update(block)
                        length += len(block)
            except OSError:
                failures.append(f"item {item.id}: blob {key} is missing")
                continue
            if digest.hexdigest() != key or length != size:
                failures.append(f"item {item.id}: blob {key} does not match its SHA-256 or size")
            checked += 1
    print(f"drill:   blobs: {len(items)} items, {checked} blobs checked")
for failure in failures:
    print(f"drill: FAIL: {failure}", file=sys.stderr)
sys.exit(1 if failures else 0)
PY
	die "the restored log or blobs did not check out"

printf 'drill: ok: the backup restores, passes doctor, and its log and blobs check out\n'
