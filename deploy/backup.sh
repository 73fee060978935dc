#!/usr/bin/env bash
# Back up an Evidence Vault server: the database, the local blobs, the key
# file, and a manifest of SHA-256s. Usage:
#
#   set -a; . /etc/evault-server/env; set +a
#   deploy/backup.sh /srv/backups/evault-$(date -u +%Y%m%dT%H%M%SZ)
#
# Run it as the server's user (it must read the key file). DEST must not
# exist; it is created 0700. The settings are the server's own EVAULT_*
# variables. Nothing secret is printed.
#
# - PostgreSQL: pg_dump -Fc (give the password through ~/.pgpass or
#   PGPASSFILE, not in EVAULT_DATABASE_URL, or pg_dump shows it in ps).
# - SQLite: Python's sqlite3 backup API (a consistent copy while the server runs).
# - Local blobs: a tar of <blob root>/blobs, taken after the database, so
#   every item in the dump has its blobs in the tar.
# - S3 blobs are not copied: use the bucket's versioning and replication.
# - The key file, 0600: store the backup offline and encrypted; whoever holds
#   the key file can sign as this log and decrypt the server's release shares.
#   The peer key file (peer.key), 0600 too: whoever holds it can speak to this
#   server's peers as this server.
set -euo pipefail
umask 077

die() {
	printf 'backup: error: %s\n' "$*" >&2
	exit 1
}
# No step fails in silence: whatever stops the script under set -e says so.
trap 'printf "backup: error: failed at line %s (%s); this backup is incomplete\n" "$LINENO" "$BASH_COMMAND" >&2' ERR

[[ $# -eq 1 ]] || die "usage: backup.sh DEST"
dest=$1
if [[ -e $dest ]]; then
	die "$dest exists; give a new directory"
fi

evault_server=$(command -v evault-server) || die "evault-server is not on PATH (activate the venv)"
python=${EVAULT_PYTHON:-$(dirname "$evault_server")/python}

# The server's own reading of the configuration, so defaults match.
settings=$("$python" - <<'PY'
from server.config import Config

config = Config.from_env()
kind = "sqlite" if config.database_url.startswith("sqlite:") else "postgresql"
print(kind)
print(config.database_url.removeprefix("sqlite:///") if kind == "sqlite" else "")
print(config.key_file)
print(config.peer_key_file)
print(config.storage)
print(config.blob_root)
PY
) || die "cannot read the configuration (EVAULT_* variables)"
{
	read -r db_kind
	read -r sqlite_path
	read -r key_file
	read -r peer_key_file
	read -r storage
	read -r blob_root
} <<<"$settings"

mkdir -m 700 -- "$dest" || die "cannot create $dest (does its parent exist?)"

case $db_kind in
sqlite)
	printf 'backup: database (SQLite) -> database.sqlite\n'
	"$python" - "$sqlite_path" "$dest/database.sqlite" <<'PY'
import sqlite3
import sys

source = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
target = sqlite3.connect(sys.argv[2])
with target:
    source.backup(target)
target.close()
source.close()
PY
	;;
postgresql)
	printf 'backup: database (PostgreSQL) -> database.pgdump\n'
	# pg_dump speaks libpq URLs: drop SQLAlchemy's driver name.
	pg_url=${EVAULT_DATABASE_URL/postgresql+psycopg:/postgresql:}
	pg_dump --format=custom --no-owner --file="$dest/database.pgdump" --dbname="$pg_url" ||
		die "pg_dump failed"
	;;
esac

case $storage in
local)
	printf 'backup: local blobs under the blob root -> blobs.tar\n'
	# Blobs never change once stored, but new ones land and deleted items'
	# go while the server works. tar gets a fixed list of the blob files
	# (folders are made again on extraction), so nothing "changes as it is
	# read"; a blob deleted between the list and the tar is left out, and
	# every listed file missing from the tar must be gone from the disk too,
	# or the backup fails: a file that could not be read is never skipped.
	list=$dest/.blobs.list
	if [[ -d $blob_root/blobs ]]; then
		# A listing that fails (permissions, a disk error) is an error, never a short list.
		(cd -- "$blob_root" && find blobs -type f -print) >"$list" ||
			die "cannot list the blobs under $blob_root; this backup is incomplete"
	else
		: >"$list"
	fi
	tar -C "$blob_root" --no-recursion --ignore-failed-read --files-from="$list" \
		-cf "$dest/blobs.tar" 2>"$dest/.tar.err" ||
		die "tar of the blobs failed: $(head -c 500 "$dest/.tar.err"); this backup is incomplete"
	missing=0
	while read -r path; do
		if [[ -e $blob_root/$path ]]; then
			printf 'backup: error: %s could not be read\n' "$path" >&2
			missing=$((missing + 1))
		fi
	done < <(comm -23 <(sort -- "$list") <(tar -tf "$dest/blobs.tar" | sort))
	((missing == 0)) || die "$missing blob(s) could not be read; this backup is incomplete"
	rm -f -- "$list" "$dest/.tar.err"
	;;
s3)
	printf 'backup: NOT COVERED: blobs in the S3 bucket (EVAULT_S3_BUCKET); rely on the\n'
	printf 'backup:   bucket'"'"'s versioning and replication to another region or provider\n'
	;;
esac

printf 'backup: key file -> server.key (0600)\n'
cp -- "$key_file" "$dest/server.key"
chmod 600 "$dest/server.key"
if [ -e "$peer_key_file" ]; then
	printf 'backup: peer key file -> peer.key (0600)\n'
	cp -- "$peer_key_file" "$dest/peer.key"
	chmod 600 "$dest/peer.key"
fi

cat >"$dest/backup.info" <<INFO
format 1
created $(date -u +%Y-%m-%dT%H:%M:%SZ)
database $db_kind
storage $storage
INFO

(
	cd "$dest"
	sha256sum -- * >MANIFEST.sha256
)
printf 'backup: manifest -> MANIFEST.sha256\n'
printf 'backup: NOT COVERED: /etc/evault-server (env, SMTP password file), the TLS\n'
printf 'backup:   certificates, the onion service keys (/var/lib/tor/evault)\n'
printf 'backup: WARNING: %s/server.key is the server'"'"'s private key: store this backup\n' "$dest"
printf 'backup:   offline and encrypted (e.g. age -p or an encrypted disk)\n'
printf 'backup: done: %s\n' "$dest"
