#!/usr/bin/env bash
# The Evidence Vault demo: what the product does, narrated step by step.
# Everything it makes goes under one directory ($DEMO_DIR, default ./demo-output).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=${EVAULT_BIN:-"$here/../.venv/bin"}
evault=${EVAULT:-"$bin/evault"}
server_cmd="$bin/evault-server"
python="$bin/python"
out=${DEMO_DIR:-demo-output}
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

say "An operator sets up a server on this machine: SQLite, local disk, a log key in a 0600 file."
export EVAULT_DATA_DIR="$out/server"
"$server_cmd" init | sed 's/^/    /'
port=$(free_port)
# A local mail server stands in for the newsroom's: notices land in $out/mail as .eml files.
smtp_port=$(free_port)
"$python" "$here/mail_sink.py" "$smtp_port" "$out/mail" > "$out/mail-sink.log" 2>&1 &
sink_pid=$!
# For the demo only: the switch's worker sweeps every second and intervals of seconds are allowed.
EVAULT_SMTP_HOST=127.0.0.1 EVAULT_SMTP_PORT="$smtp_port" EVAULT_SMTP_SECURITY=none \
  EVAULT_MAIL_FROM=vault@demo.invalid EVAULT_WORKER_INTERVAL=1 EVAULT_MIN_INTERVAL=1 \
  "$server_cmd" run --port "$port" > "$out/server.log" 2>&1 &
server_pid=$!
stop_all() {
  kill "$server_pid" "$sink_pid" 2>/dev/null || true
  wait "$server_pid" "$sink_pid" 2>/dev/null || true
}
trap stop_all EXIT
url="http://127.0.0.1:$port"
"$python" - "$url" <<'PY'
import sys, time, urllib.request
for _ in range(100):
    try:
        urllib.request.urlopen(sys.argv[1] + "/healthz", timeout=1).read()
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("the server did not start")
PY
echo "    serving on $url (pid $server_pid)"
log_key=$("$server_cmd" keys show | sed -n 's/^log key: //p')
reporter_invite=$("$server_cmd" invite create --role reporter | tail -1)
editor_invite=$("$server_cmd" invite create --role editor | tail -1)
echo "    one-time invites for a reporter and an editor; clients will pin the log key it printed"

# For the demo only: passphrases from the environment instead of the terminal, and cheap key
# stretching so that it runs in seconds. A real keystore uses Argon2id with 256 MiB.
export EVAULT_PASSPHRASE="demo only: orbit lantern cobalt sparrow"
as_reporter() { EVAULT_HOME="$out/reporter" "$evault" "$@"; }
as_editor() { EVAULT_HOME="$out/editor" "$evault" "$@"; }

say "The reporter creates an identity and a keystore, then registers with the invite."
as_reporter init --name "Reporter" --insecure-fast-kdf 2>/dev/null | sed 's/^/    /'
as_reporter --server "$url" register --invite "$reporter_invite" --log-key "$log_key" | sed 's/^/    /'

say "The editor does the same and hands the reporter a card (public keys only)."
as_editor init --name "Editor" --insecure-fast-kdf 2>/dev/null | sed -n 2p | sed 's/^/    /'
as_editor --server "$url" register --invite "$editor_invite" --log-key "$log_key" | sed 's/^/    /'
as_editor card > "$out/editor.card"

say "The reporter adds documents: encrypted on the laptop while uploading, each receipt checked against the log."
mkdir -p "$out/evidence"
cp "$here/sample-evidence.txt" "$out/evidence/memo.txt"
"$python" -c 'import os,sys; open(sys.argv[1],"wb").write(os.urandom(24*1024*1024))' "$out/evidence/recording.bin"
as_reporter add "$out/evidence/memo.txt" "$out/evidence/recording.bin" | sed 's/^/    /'
item=$(as_reporter --json ls | "$python" -c 'import json,sys; print([i["id"] for i in json.load(sys.stdin)["items"] if i["filename"]=="memo.txt"][0])')
echo "    the server holds only ciphertext: $(find "$out/server" -type f -path '*blobs*' | wc -l) blobs, no file names"

say "The reporter pins the editor's card and compares fingerprints with them (read aloud, in person)."
as_reporter editors add editor "$out/editor.card" | sed -n 1,2p | sed 's/^/    /'
fingerprint=$(as_editor --json whoami | "$python" -c 'import json,sys; print(json.load(sys.stdin)["fingerprint"])')
as_reporter editors verify editor --fingerprint "$fingerprint" | sed 's/^/    /'

say "The reporter shares the memo: only its header is re-wrapped, the payload is not sent again."
as_reporter share "$item" --with editor | sed 's/^/    /'

say "The editor pulls it: decrypted, signature and hashes checked, written under a safe name."
mkdir -p "$out/editor-inbox"
as_editor inbox | sed 's/^/    /'
as_editor pull "$item" -o "$out/editor-inbox" 2>/dev/null | sed 's/^/    /'
cmp "$out/evidence/memo.txt" "$out/editor-inbox/memo.txt" && echo "    identical to the reporter's original"

say "The reporter checks the audit log: signed by the pinned key, consistent, every entry re-hashed."
as_reporter log verify --full | sed 's/^/    /'
as_reporter log show | tail -6 | sed 's/^/    /'

say "The reporter arms the dead-man switch: a release key made on the laptop, split between the server and the editor as trustee."
echo "    (a 12-second interval for the demo; real ones are days)"
echo "    (the release will show each file's name and capture time, never a note: --reveal name,time;"
echo "     on a terminal without --reveal, evault asks)"
as_reporter switch set --every 12s --grace 3s --remind-before 6s --trustee editor --threshold 1 \
  --remind-email reporter@demo.invalid --alert-email 'editor <editor@demo.invalid>' \
  --publish-email newsdesk@demo.invalid --reveal name,time 2>&1 | sed 's/^/    /'
vault=$(as_reporter --json switch status | "$python" -c 'import json,sys; print(json.load(sys.stdin)["vault"])')

say "The reporter checks in once: one signed request moves the deadline."
as_reporter checkin | sed 's/^/    /'

say "Then the reporter is silenced and misses the next check-in. The worker takes over."
wait_mail() {  # wait_mail ADDRESS: what the mail server saw, then what its recipient reads
  "$python" - "$out/mail" "$1" "$out/notice.age" <<'PY'
import email, email.policy, html, pathlib, re, sys, time, urllib.request
box, address, attachment = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
for _ in range(600):
    for path in sorted(box.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] != address:
            continue
        print(f"{path.name} to {address}: \"{message['Subject']}\" (the same for every notice)")
        for part in message.iter_attachments():
            attachment.write_bytes(part.get_content())
            print(f"  with {part.get_filename()}, encrypted to the recipient's card")
        link = re.search(r"https?://\S+/notice/[A-Za-z0-9_-]{43}", message.get_body(("plain",)).get_content())
        if link:
            form = urllib.request.Request(link[0], data=b"", method="POST",
                headers={"Content-Type": "application/x-www-form-urlencoded"})
            page = urllib.request.urlopen(form, timeout=30).read().decode()
            title = html.unescape(re.search(r"<h1>(.*?)</h1>", page, re.S)[1])
            print(f"  at its private link: {title}")
        sys.exit(0)
    time.sleep(0.1)
sys.exit(f"no mail to {address}")
PY
}
wait_mail reporter@demo.invalid | sed 's/^/    /'
wait_mail editor@demo.invalid | sed 's/^/    /'
echo "    the editor opens it: evault notice open notice.age"
as_editor notice open "$out/notice.age" | sed 's/^/      /'
wait_mail newsdesk@demo.invalid | sed 's/^/    /'
release_url="$url/release/$vault"
echo "    the release page: $release_url"

say "Anyone can now check the release with the standard age tool and the published key."
"$python" - "$release_url" "$out/release" <<'PY'
import pathlib, re, sys, urllib.request
page_url, target = sys.argv[1], pathlib.Path(sys.argv[2])
target.mkdir(parents=True, exist_ok=True)
page = urllib.request.urlopen(page_url, timeout=30).read().decode()
(target / "key.txt").write_bytes(urllib.request.urlopen(page_url + "/key.txt", timeout=30).read())
base = page_url.split("/release/")[0]
links = sorted(set(re.findall(r'href="(/release/[0-9a-f]+/items/[0-9a-f]+\.age)"', page)))
for link in links:
    (target / link.rsplit("/", 1)[1]).write_bytes(urllib.request.urlopen(base + link, timeout=60).read())
print(f"    {len(links)} released file(s) downloaded, with the release key")
PY
if command -v age >/dev/null 2>&1; then
  for sealed in "$out"/release/*.age; do
    age -d -i "$out/release/key.txt" -o "$sealed.out" "$sealed"
    for original in "$out/evidence/memo.txt" "$out/evidence/recording.bin"; do
      if cmp -s "$sealed.out" "$original"; then echo "    age -d $(basename "$sealed"): identical to $(basename "$original")"; fi
    done
  done
else
  echo "    (the age tool is not installed; the page shows the command to run)"
fi
as_reporter log verify --full | sed 's/^/    /'

say "An evidence package for a court: checked offline, without the server, with the keys published apart."
as_reporter export "$item" -o "$out/memo-evidence" | sed 's/^/    /'
stop_all
echo "    (server stopped)"
as_reporter card > "$out/reporter.card"
as_reporter verify "$out/memo-evidence" --log-key "$log_key" --card "$out/reporter.card" | sed -n 1,4p | sed 's/^/    /'
"$python" - "$out/memo-evidence/item.age" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
data[-5] ^= 1
open(sys.argv[1], "wb").write(data)
PY
if as_reporter verify "$out/memo-evidence" 2> "$out/tampered.txt"; then
  echo "    unexpected: a tampered package passed"; exit 1
fi
echo "    after flipping one bit of item.age: $(head -1 "$out/tampered.txt")"

say "Offline, the same format: evault encrypts and decrypts files any age tool can open."
echo "    a stand-alone post-quantum identity (ML-KEM-768 + X25519), mode 0600:"
"$evault" keygen -o "$out/reporter.key" 2>/dev/null
ls -l "$out/reporter.key" | awk '{print "    " $1 "  " $NF}'
recipient=$(grep '^# public key: ' "$out/reporter.key" | cut -d' ' -f4)
echo "    public key (recipient): ${recipient:0:40}… (${#recipient} characters)"

say "An editor creates one too and sends the reporter only the public key."
"$evault" keygen -o "$out/editor.key" 2>/dev/null
grep '^# public key: ' "$out/editor.key" | cut -d' ' -f4 > "$out/editor.pub"

say "The reporter encrypts a document on the device to both, as a standard age v1 file."
cp "$here/sample-evidence.txt" "$out/memo.txt"
"$evault" encrypt -r "$recipient" -R "$out/editor.pub" -o "$out/memo.txt.age" "$out/memo.txt"
echo "    $(wc -c < "$out/memo.txt") bytes of plaintext -> $(wc -c < "$out/memo.txt.age") bytes of ciphertext; the header:"
head -c 120 "$out/memo.txt.age" | head -n 2 | cut -c1-76 | sed 's/^/    /'

say "Anyone without a key learns nothing: decrypting with a stranger's key fails."
"$evault" keygen --x25519 -o "$out/stranger.key" 2>/dev/null
if "$evault" decrypt -i "$out/stranger.key" -o "$out/stolen.txt" "$out/memo.txt.age"; then
  echo "    unexpected: a stranger could decrypt"; exit 1
fi
[ ! -e "$out/stolen.txt" ] && echo "    (and no output file was left behind)"

say "The editor decrypts it; the result is the original, byte for byte."
"$evault" decrypt -i "$out/editor.key" -o "$out/memo.editor.txt" "$out/memo.txt.age"
cmp "$out/memo.txt" "$out/memo.editor.txt" && echo "    identical: $(sha256sum "$out/memo.txt" | cut -c1-16)…"

say "A flipped bit anywhere in the file is detected."
python3 - "$out/memo.txt.age" "$out/memo.tampered.age" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
data[-20] ^= 1
open(sys.argv[2], "wb").write(data)
PY
if "$evault" decrypt -i "$out/reporter.key" -o "$out/memo.tampered.txt" "$out/memo.tampered.age"; then
  echo "    unexpected: tampering went unnoticed"; exit 1
fi

say "Armored text survives e-mail and copy-paste; it streams through pipes too."
"$evault" encrypt -a -r "$recipient" < "$out/memo.txt" > "$out/memo.txt.asc"
sed -n '1p;2s/^\(.\{40\}\).*/\1…/p' "$out/memo.txt.asc" | sed 's/^/    /'
"$evault" decrypt -i "$out/reporter.key" < "$out/memo.txt.asc" | cmp - "$out/memo.txt" && echo "    round trip through stdin/stdout: identical"

if command -v age >/dev/null 2>&1; then
  say "The standard age tool opens files made for classic X25519 keys, so editors need no special software."
  "$evault" keygen --x25519 -o "$out/editor-classic.key" 2>/dev/null
  classic=$(grep '^# public key: ' "$out/editor-classic.key" | cut -d' ' -f4)
  "$evault" encrypt -r "$classic" -o "$out/memo.classic.age" "$out/memo.txt"
  age -d -i "$out/editor-classic.key" "$out/memo.classic.age" | cmp - "$out/memo.txt" && echo "    age -d: identical"
fi

say "Done. Everything is under $out"
