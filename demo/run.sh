#!/usr/bin/env bash
# The Evidence Vault demo: what the product does, narrated step by step.
# Everything it makes goes under one directory ($DEMO_DIR, default ./demo-output).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
evault=${EVAULT:-"$here/../.venv/bin/evault"}
out=${DEMO_DIR:-demo-output}
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "A reporter creates a post-quantum identity (ML-KEM-768 + X25519); the secret stays on the laptop, mode 0600."
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
