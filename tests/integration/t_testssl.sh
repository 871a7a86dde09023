# testssl.sh (Debian package) against a throw-away popsyncd on 127.0.0.1:
# no weak protocol, cipher or known vulnerability may be reported.  About a
# minute.  When testssl is not installed it exits 77, which ctest reports as
# skipped (SKIP_RETURN_CODE in tests/CMakeLists.txt), never as passed.
# TESTSSL names the program to use (as scripts/testssl.sh reads it).
set -euo pipefail
TESTSSL=${TESTSSL:-$(command -v testssl || command -v testssl.sh || true)}
if [ -z "$TESTSSL" ] || ! command -v "$TESTSSL" >/dev/null; then
    echo "skip: testssl is not installed (apt install testssl.sh)"
    exit 77
fi
export TESTSSL
: "${POPSYNCD:?POPSYNCD must point at the popsyncd binary}"
: "${POPSYNC:?POPSYNC must point at the popsync binary}"
POPSYNCD=$POPSYNCD POPSYNC=$POPSYNC bash "$(dirname "$0")/../../scripts/testssl.sh" | sed -n '/==== popsyncd testssl summary/,$p'
