#!/usr/bin/env bash
# bench.quick (ctest): popsync-bench --quick runs every phase small, and its
# JSON (the last line) carries today's keys and the CPU-per-record keys of
# issue 17 point 6, each a positive number.  No speed is asserted.
# usage: check_quick.sh PATH/TO/popsync-bench
set -euo pipefail
bench="$1"
out=$("$bench" --quick)
json=$(printf '%s\n' "$out" | tail -n 1)
printf '%s\n' "$out"
python3 - "$json" <<'PY'
import json, sys
j = json.loads(sys.argv[1])
# Keys of earlier sessions (scripts and docs read them): present, numbers.
old = ["persons", "townships", "ingest_records_per_s", "records_ingested", "cold_pull_township_per_s",
       "cold_pull_admin_per_s", "incremental_ms", "incremental_changes", "idle_clients", "server_rss_idle_mb",
       "rss_per_conn_kb", "handshakes_full_per_s", "handshakes_resumed_per_s", "wire_bytes_per_record",
       "wire_bytes_per_record_uncompressed", "monthly_report_ms", "filtered_count_ms"]
# Issue 17 point 6, and the per-side and memory figures beside them: > 0.
new = ["ingest_cpu_us_per_record", "ingest_server_cpu_us_per_record", "ingest_client_cpu_us_per_record",
       "cold_pull_admin_cpu_us_per_record", "cold_pull_admin_server_cpu_us_per_record",
       "cold_pull_admin_client_cpu_us_per_record", "cold_pull_township_cpu_us_per_record",
       "cold_pull_township_server_cpu_us_per_record", "cold_pull_township_client_cpu_us_per_record",
       "handshake_full_server_cpu_us", "handshake_full_client_cpu_us", "handshake_resumed_server_cpu_us",
       "handshake_resumed_client_cpu_us", "handshakes_full_server_capacity_per_s", "server_rss_anon_peak_mb"]
bad = [k for k in old if not isinstance(j.get(k), (int, float))]
bad += [k for k in new if not isinstance(j.get(k), (int, float)) or j[k] <= 0]
for a, b, both in [("ingest_server_cpu_us_per_record", "ingest_client_cpu_us_per_record", "ingest_cpu_us_per_record"),
                   ("cold_pull_admin_server_cpu_us_per_record", "cold_pull_admin_client_cpu_us_per_record",
                    "cold_pull_admin_cpu_us_per_record")]:
    if all(isinstance(j.get(k), (int, float)) for k in (a, b, both)) and abs(j[a] + j[b] - j[both]) > 0.01:
        bad.append(both + " is not server + client")
if bad:
    print("check_quick: missing, not a number or not positive:", ", ".join(bad), file=sys.stderr)
    sys.exit(1)
print("check_quick: %d keys present, the %d CPU and memory keys positive" % (len(old) + len(new), len(new)))
PY
