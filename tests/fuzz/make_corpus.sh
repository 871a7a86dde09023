#!/usr/bin/env bash
# Regenerates the seed corpus in tests/fuzz/corpus from real data: a small
# synthetic district made by `popsync generate` on the demo org-unit tree,
# exported as CSV and JSON (a few records per kind), the frames and records
# gen_corpus packs from them, and the demo org-unit file.  Crash inputs kept
# as regression tests (corpus/<target>/crash-*) are left alone.
# usage: tests/fuzz/make_corpus.sh BUILD_DIR   (a build with -DPS_FUZZ=ON)
set -euo pipefail
cd "$(dirname "$0")/../.."
b=${1:?usage: make_corpus.sh BUILD_DIR}
export POPSYNC_PASSPHRASE=fuzz-corpus POPSYNC_KDF_ITERATIONS=1000
t=$(mktemp -d "${TMPDIR:-/tmp}/popsync-corpus.XXXXXX")
trap 'rm -rf "$t"' EXIT
"$b/popsync" pki init-ca --dir "$t/pki" >/dev/null
"$b/popsync" pki issue --dir "$t/pki" --role admin --orgunit 130203000000 --name admin >/dev/null
"$b/popsync" --data "$t/c" init --server 127.0.0.1:1 --ca "$t/pki/ca.crt" --cert "$t/pki/admin.crt" \
    --key "$t/pki/admin.key" --orgunits demo/orgunits.csv >/dev/null
"$b/popsync" --data "$t/c" generate --persons 400 --seed 3 --orgunits demo/orgunits.csv >/dev/null
args=()
for k in person household birth migration benefit service_visit; do
    "$b/popsync" --data "$t/c" export --kind $k --format csv --out "$t/all.csv"
    "$b/popsync" --data "$t/c" export --kind $k --format json --out "$t/all.json"
    # Three records each: seeds stay small.
    python3 - "$t/all.csv" "$t/$k.csv" "$t/all.json" "$t/$k.json" <<'PY'
import json, sys
lines = open(sys.argv[1], encoding="utf-8", newline="").read().split("\r\n")
open(sys.argv[2], "w", encoding="utf-8", newline="").write("\r\n".join(lines[:4]) + "\r\n")
recs = json.load(open(sys.argv[3], encoding="utf-8"))
open(sys.argv[4], "w", encoding="utf-8").write(json.dumps(recs[:3], ensure_ascii=False, indent=2) + "\n")
PY
    args+=("$k:$t/$k.csv" "$k:$t/$k.json")
done
"$b/tests/fuzz/gen_corpus" tests/fuzz/corpus "${args[@]}"
mkdir -p tests/fuzz/corpus/fuzz_orgunits
cp demo/orgunits.csv tests/fuzz/corpus/fuzz_orgunits/demo.csv
# A small tree with a BOM and CRLF line ends, as a spreadsheet writes it.
printf '\xef\xbb\xbfcode,parent,name,kind\r\n130203000000,,钢城区,district\r\n130203001000,130203000000,建设路街道,subdistrict\r\n130203001001,130203001000,建设路社区,community\r\n' \
    >tests/fuzz/corpus/fuzz_orgunits/bom-crlf.csv
find tests/fuzz/corpus -type f | sort | sed 's/^/  /'
