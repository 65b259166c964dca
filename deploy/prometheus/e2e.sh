#!/usr/bin/env bash
# A real Prometheus scraping the running stack (`cargo xtask dev`): with
# mobile-bff's recommendations made slow at the mock, the degraded rate of
# the product page for recommendations rises, the timeouts are counted and
# the degraded-rate page fires, as read back through Prometheus's HTTP API.
# (The product page, not home: home serves recommendations from the segment
# cache, so a slow mock degrades it only once the cached value has aged.) CI runs it; so can you, with the
# stack up and `prometheus` on the PATH (Debian: apt-get install prometheus).
set -euo pipefail
cd "$(dirname "$0")"

port=${PROMETHEUS_PORT:-9090}
work=$(mktemp -d)
# The committed configuration, scraped and evaluated every second.
sed 's/scrape_interval: 5s/scrape_interval: 1s/; s/evaluation_interval: 5s/evaluation_interval: 1s/' \
  prometheus.yml > "$work/prometheus.yml"
cp -r rules "$work/"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address="127.0.0.1:$port" >"$work/prometheus.log" 2>&1 &
prometheus_pid=$!
recommendations=http://127.0.0.1:7006
cleanup() {
  curl -sf -X DELETE "$recommendations/__faults" >/dev/null || true
  kill "$prometheus_pid" 2>/dev/null || true
  wait "$prometheus_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 1 60); do
  curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null && break
  sleep 0.5
done
curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null || { cat "$work/prometheus.log"; echo "prometheus did not start"; exit 1; }

# The first value of an instant query, or "none".
query() {
  curl -sf --get "http://127.0.0.1:$port/api/v1/query" --data-urlencode "query=$1" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "none")'
}
token=$(cd ../.. && cargo xtask token --client mobile --user u-1)
page() { # product pages for $1 seconds, ten a second
  local until=$(( $(date +%s) + $1 )) pids=()
  while [ "$(date +%s)" -lt "$until" ]; do
    curl -s -o /dev/null --max-time 5 -H "Authorization: Bearer $token" "http://127.0.0.1:8081/v1/product-page/p-$(( RANDOM % 48 + 1 ))" &
    pids+=($!)
    sleep 0.1
  done
  wait "${pids[@]}"  # the requests, not Prometheus
}
ratio='bff:component_degraded_ratio:rate5m{job="mobile-bff",route="/v1/product-page/{id}",component="recommendations"}'
firing='ALERTS{alertname="BffDegradedFastBurn",job="mobile-bff",route="/v1/product-page/{id}",alertstate="firing"}'

page 6
sleep 3
healthy=$(query "$ratio")
echo "healthy: degraded ratio of the product page for recommendations = $healthy"
[ "$healthy" = "0" ] || { echo "expected 0 before the fault"; exit 1; }
[ "$(query "$firing")" = "none" ] || { echo "the degraded page fired before the fault"; exit 1; }

# Slower than mobile-bff's recommendations timeout: every product page
# goes without recommendations.
curl -sf -X PUT -H 'content-type: application/json' -d '{"latencyMs": 2000}' "$recommendations/__faults" >/dev/null
page 12
sleep 3
slow=$(query "$ratio")
echo "recommendations slow: degraded ratio = $slow"
python3 -c "import sys; sys.exit(0 if float('$slow') > 0.3 else 1)" || { echo "the degraded ratio did not rise"; exit 1; }
timeouts=$(query 'sum(increase(bff_dependency_calls_total{job="mobile-bff",dependency="recommendations",outcome="timeout"}[1m]))')
echo "recommendations timeouts in the last minute: $timeouts"
python3 -c "import sys; sys.exit(0 if float('$timeouts') > 0 else 1)" || { echo "no timeout counted"; exit 1; }
alert=$(query "$firing")
echo "BffDegradedFastBurn for mobile-bff's product page: ${alert/1/firing}"
[ "$alert" = "1" ] || { echo "the degraded-rate page did not fire"; exit 1; }
echo "prometheus e2e ok"
