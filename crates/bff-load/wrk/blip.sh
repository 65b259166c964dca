#!/usr/bin/env bash
# The issue's measurement, with wrk instead of bff-load: mobile-bff pinned to
# core 0, the mocks and wrk to core 1, 32 connections on the product pages
# for 15 s; one second in, pricing gets LATENCY_MS of extra latency for
# FAULT_SECS. Prints wrk's report (requests; "Non-2xx" are the failures).
#
#   crates/bff-load/wrk/blip.sh BIN_DIR [LATENCY_MS] [FAULT_SECS]
#
# BIN_DIR holds release builds of mobile-bff and services-mock
# (target/release after `cargo build --release -p mobile-bff -p services-mock`).
set -euo pipefail
bin=${1:?usage: blip.sh BIN_DIR [LATENCY_MS] [FAULT_SECS]}
latency=${2:-180}
fault=${3:-0.05}
here=$(cd "$(dirname "$0")" && pwd)
logs=$(mktemp -d)
taskset -c 1 "$bin/services-mock" all >"$logs/mocks.log" 2>&1 &
mocks=$!
trap 'kill $mocks ${bff:-} 2>/dev/null; wait 2>/dev/null' EXIT
until curl -fs http://127.0.0.1:7003/healthz >/dev/null; do sleep 0.1; done
REDIS_URL= taskset -c 0 "$bin/mobile-bff" >"$logs/bff.log" 2>&1 &
bff=$!
until curl -fs http://127.0.0.1:8081/healthz >/dev/null; do sleep 0.1; done
TOKEN=$("$bin/services-mock" token --client mobile --user u-1)
export TOKEN
for n in 1 2 3 4 5 6 7 8; do
  curl -fs -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:8081/v1/product-page/p-$n"
done
fault_job() {
  sleep 1
  curl -fs -X PUT -H 'content-type: application/json' -d "{\"latencyMs\": $latency}" http://127.0.0.1:7003/__faults >/dev/null
  sleep "$fault"
  curl -fs -X DELETE http://127.0.0.1:7003/__faults >/dev/null
}
fault_job &
faulting=$!
taskset -c 1 wrk -t1 -c32 -d15s -s "$here/product-pages.lua" http://127.0.0.1:8081
wait "$faulting"
