# testssl.sh (Debian package) against a throw-away popsyncd on 127.0.0.1:
# no weak protocol, cipher or known vulnerability may be reported.  About a
# minute; skipped (with a message) when testssl is not installed.
set -euo pipefail
if ! command -v testssl >/dev/null && ! command -v testssl.sh >/dev/null; then
    echo "skip: testssl is not installed (apt install testssl.sh)"
    exit 0
fi
: "${POPSYNCD:?POPSYNCD must point at the popsyncd binary}"
: "${POPSYNC:?POPSYNC must point at the popsync binary}"
POPSYNCD=$POPSYNCD POPSYNC=$POPSYNC bash "$(dirname "$0")/../../scripts/testssl.sh" | sed -n '/==== popsyncd testssl summary/,$p'
