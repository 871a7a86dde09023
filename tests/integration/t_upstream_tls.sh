# upstream over TLS (issue 19 point 1): popsyncd publishes to a NATS server
# that requires TLS and a client certificate ([upstream] ca, cert, key), and
# refuses to publish (the lag grows, the district serves on) when its
# certificate is not one the NATS server trusts.  One JetStream node
# (replicas = 1): the cluster behaviour is t_upstream's.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_nats.sh"
: "${PS_NATSTOOL:?PS_NATSTOOL must point at ps_natstool}"
command -v openssl >/dev/null || { echo "SKIP: openssl missing"; exit 77; }
[ -x "$NATS_SERVER" ] || { echo "SKIP: nats-server not installed"; exit 77; }

make_pki
# A CA for NATS of its own (the province's), a server certificate for
# 127.0.0.1 and a client certificate for the district; and a stranger's.
N="$T/natspki"
mkdir -p "$N"
ossl() { openssl "$@" 2>/dev/null; }
for ca in ca other; do
    ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=nats-$ca" \
        -keyout "$N/$ca.key" -out "$N/$ca.crt"
done
leaf() { # NAME CA EXT
    ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" -keyout "$N/$1.key" -out "$N/$1.csr"
    printf '%s\n' "$3" >"$N/$1.ext"
    ossl x509 -req -in "$N/$1.csr" -CA "$N/$2.crt" -CAkey "$N/$2.key" -CAcreateserial -days 2 \
        -extfile "$N/$1.ext" -out "$N/$1.crt"
}
leaf server ca "subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth"
leaf district ca "extendedKeyUsage=clientAuth"
leaf stranger other "extendedKeyUsage=clientAuth"
[ -s "$N/server.crt" ] && [ -s "$N/district.crt" ] || fail "openssl could not make the NATS certificates"

read -r NP MP <<<"$(nats_free_ports 2)"
NATS_DIR="$T/nats"
mkdir -p "$NATS_DIR/n1"
cat >"$NATS_DIR/n1.conf" <<EOC
server_name: n1
listen: 127.0.0.1:$NP
http: 127.0.0.1:$MP
tls { cert_file: "$N/server.crt", key_file: "$N/server.key", ca_file: "$N/ca.crt", verify: true, timeout: 5 }
jetstream { store_dir: "$NATS_DIR/n1", max_memory_store: 64MB, max_file_store: 1GB }
EOC
export NATS_MON1="http://127.0.0.1:$MP"
nats_start 1
nats_wait_ready 30 || fail "TLS NATS did not start"
URL="tls://127.0.0.1:$NP"

up_conf() { # CERTNAME
    cat >"$T/up.conf" <<EOC
[upstream]
urls = $URL
ca = $N/ca.crt
cert = $N/$1.crt
key = $N/$1.key
district = $DISTRICT
replicas = 1
EOC
}
status_field() {
    "$POPSYNCD" status --data "$T/server" | sed -n "s/^$1 *\([0-9]*\).*/\1/p"
}

# --- a certificate the NATS server does not trust: nothing goes up, sync works ---
up_conf stranger
"$POPSYNCD" --check-config --config "$T/up.conf" --listen 127.0.0.1:0 --data "$T/server" \
    --ca "$T/pki/ca.crt" --cert "$T/pki/popsyncd.crt" --key "$T/pki/popsyncd.key" >/dev/null ||
    fail "check-config refused the [upstream] section"
printf '[upstream]\nurls = %s\ndistrict = 1101\ncert = %s\n' "$URL" "$N/district.crt" >"$T/bad.conf"
out=$("$POPSYNCD" --check-config --config "$T/bad.conf" --listen 127.0.0.1:0 --data "$T/server" \
    --ca "$T/pki/ca.crt" --cert "$T/pki/popsyncd.crt" --key "$T/pki/popsyncd.key" 2>&1) &&
    fail "check-config took a bad [upstream] section"
echo "$out" | grep -q "district must be" || fail "check-config did not name the bad district: $out"
start_server --config "$T/up.conf"
client t1 town1
ps --data "$T/t1" generate --persons 20 --seed 1 >/dev/null 2>&1
ps --data "$T/t1" sync >/dev/null || fail "sync refused while upstream TLS fails"
sleep 2
[ "$(status_field "upstream lag:")" -gt 0 ] || fail "a stranger's certificate published"
stop_server
pass "a client certificate NATS does not trust publishes nothing; the district serves on"

# --- the district's certificate: everything goes up over TLS -------------------
up_conf district
start_server --config "$T/up.conf" --listen "127.0.0.1:$PORT"
for _ in $(seq 1 240); do
    [ "$(status_field "upstream lag:")" = 0 ] && break
    sleep 0.25
done
expect_eq "$(status_field "upstream lag:")" 0 "upstream lag over TLS"
head=$(status_field "feed head:")
n=$(PS_NATS_CA="$N/ca.crt" PS_NATS_CERT="$N/district.crt" PS_NATS_KEY="$N/district.key" \
    "$PS_NATSTOOL" "$URL" dump "popsync.$DISTRICT.>" | grep -vc ' _nodes ')
expect_eq "$n" "$head" "entries in the stream over TLS"
"$PS_NATSTOOL" "nats://127.0.0.1:$NP" info >/dev/null 2>&1 && fail "NATS answered without TLS"
pass "over TLS with a client certificate: all $head entries published"
