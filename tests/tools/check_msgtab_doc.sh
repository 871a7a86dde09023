#!/usr/bin/env bash
# Checks that the message table in docs/protocol.md §5 is the one in
# common/msgtab.def, as printed by ps_msgtab (ctest docs.msgtab).
#
# usage: check_msgtab_doc.sh PS_MSGTAB DOC [--update]
#
# The table sits between the lines "<!-- msgtab:begin ... -->" and
# "<!-- msgtab:end -->".  With --update the doc's table is replaced by the
# tool's output (run it after changing msgtab.def, then review the diff).
set -eu
tool=$1
doc=$2
want=$(mktemp)
have=$(mktemp)
trap 'rm -f "$want" "$have"' EXIT
"$tool" >"$want"
awk '/^<!-- msgtab:end/ { on = 0 } on { print } /^<!-- msgtab:begin/ { on = 1 }' "$doc" >"$have"
grep -q '^<!-- msgtab:end' "$doc" || { echo "check_msgtab_doc: no <!-- msgtab:begin --> ... <!-- msgtab:end --> in $doc" >&2; exit 1; }
if [ "${3:-}" = "--update" ]; then
    awk -v f="$want" '/^<!-- msgtab:end/ { while ((getline l < f) > 0) print l; on = 0 }
        !on { print } /^<!-- msgtab:begin/ { on = 1 }' "$doc" >"$have"
    cat "$have" >"$doc"
    exit 0
fi
if ! diff -u "$have" "$want"; then
    echo "check_msgtab_doc: the table in $doc differs from common/msgtab.def (- doc, + table);" >&2
    echo "  rerun with --update: bash $0 $tool $doc --update" >&2
    exit 1
fi
