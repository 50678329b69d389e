#!/usr/bin/env bash
# A Riverrun cluster on this machine, on loopback (docs/deploy.md):
#   infra/local/cluster.sh up --workers N --port P [--model DIR] [--prometheus] [-- SERVE_FLAGS...]
#   infra/local/cluster.sh down
# `up` starts Redis (AOF on) on port P+1, N workers (`riverrun serve`, demo model unless --model) on
# ports P+2 ... P+N+1 and HAProxy on port P in front of them (its stats page on P+N+2, /stats), returns once all of it is ready (the
# processes keep running in the background) after printing the front's URL, and writes
# RUN/workers.json: {front, redis, haproxyStats, prometheus, workers: [{id, pid, port, url}]}. Each
# worker writes its Prometheus target to RUN/targets/; RUN/prometheus.yml scrapes them with
# infra/prometheus/rules.yml, and --prometheus starts Prometheus with it on port P+N+3.
# `down` stops all of it.
# RUN is infra/local/run, or $RIVERRUN_CLUSTER_RUN. Needs redis-server, redis-cli, haproxy and curl.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
run=${RIVERRUN_CLUSTER_RUN:-$here/run}

die() {
  echo "cluster.sh: $*" >&2
  exit 1
}

# Waits until URL answers 200 (up to $2 seconds; gives up at once if process $3, when given, has exited).
wait_ready() {
  local url=$1 seconds=$2 pid=${3:-} i
  for ((i = 0; i < seconds * 10; i++)); do
    curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
    [ -z "$pid" ] || kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

up() {
  local workers=3 port=8000 model="" prometheus=0 serve=()
  while [ $# -gt 0 ]; do
    case $1 in
      --workers) workers=${2:?--workers needs a number}; shift 2 ;;
      --port) port=${2:?--port needs a number}; shift 2 ;;
      --model) model=${2:?--model needs a directory}; shift 2 ;;
      --prometheus) prometheus=1; shift ;;
      --) shift; serve=("$@"); break ;;
      *) die "unknown option $1 (up --workers N --port P [--model DIR] [-- SERVE_FLAGS...])" ;;
    esac
  done
  [[ $workers =~ ^[1-9][0-9]*$ ]] || die "--workers must be a positive integer (got $workers)"
  [[ $port =~ ^[1-9][0-9]*$ ]] && [ "$port" -le $((65535 - workers - 3)) ] || die "--port must leave room for Redis and the workers after it (got $port)"
  for tool in redis-server redis-cli haproxy curl; do
    command -v $tool >/dev/null || die "$tool is not installed (Debian: apt-get install redis-server haproxy curl)"
  done
  [ -e "$run/workers.json" ] && die "a cluster is already up in $run (infra/local/cluster.sh down first)"
  [ "$prometheus" -eq 0 ] || command -v prometheus >/dev/null || die "prometheus is not installed (Debian: apt-get install prometheus)"
  mkdir -p "$run/redis"

  local redis_port=$((port + 1))
  # Every write fsynced before Redis answers it: a restart of Redis loses nothing acknowledged.
  redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$run/redis" --appendonly yes --appendfsync always \
    --save "" --daemonize yes --pidfile "$run/redis.pid" --logfile "$run/redis.log"
  local i
  for ((i = 0; i < 50; i++)); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 || { cat "$run/redis.log" >&2; down; die "redis-server did not start on port $redis_port"; }

  local entries=() servers=""
  for ((i = 1; i <= workers; i++)); do
    local wport=$((port + 1 + i))
    "$root/bin/riverrun" serve --host 127.0.0.1 --port "$wport" --redis "redis://127.0.0.1:$redis_port" --worker-id "w$i" \
      --metrics-sd-dir "$run/targets" \
      ${model:+--model "$model"} "${serve[@]}" >"$run/w$i.log" 2>&1 &
    echo $! >"$run/w$i.pid"
    entries+=("{\"id\":\"w$i\",\"pid\":$!,\"port\":$wport,\"url\":\"http://127.0.0.1:$wport\"}")
    servers+="    server w$i 127.0.0.1:$wport check"$'\n'
  done
  { cat "$root/infra/haproxy/haproxy.cfg"; printf '%s' "$servers"; } >"$run/haproxy.cfg"
  local stats_port=$((port + workers + 2))
  export RIVERRUN_FRONT="127.0.0.1:$port" RIVERRUN_HAPROXY_STATS="127.0.0.1:$stats_port" RIVERRUN_HAPROXY_SOCKET="$run/haproxy.sock"
  haproxy -c -q -f "$run/haproxy.cfg" || { down; die "haproxy refused its configuration (infra/haproxy/haproxy.cfg)"; }
  haproxy -D -f "$run/haproxy.cfg" -p "$run/haproxy.pid" || { down; die "haproxy did not start"; }

  for ((i = 1; i <= workers; i++)); do
    wait_ready "http://127.0.0.1:$((port + 1 + i))/readyz" 180 "$(cat "$run/w$i.pid")" || { tail -20 "$run/w$i.log" >&2; down; die "worker w$i did not get ready"; }
  done
  # Ready once HAProxy's own health checks have every worker up (before that it sends everything to the first).
  for ((i = 0; i < 300; i++)); do
    [ "$(curl -fsS --max-time 1 "http://127.0.0.1:$stats_port/stats;csv" 2>/dev/null | grep -c '^workers,w[0-9]*,.*,UP,')" -eq "$workers" ] && break
    sleep 0.1
  done
  [ "$i" -lt 300 ] || { down; die "haproxy does not see every worker up (http://127.0.0.1:$stats_port/stats)"; }
  # Prometheus: the shipped config, reading this cluster's targets, with the shipped rules.
  sed -e "s|'targets/\*.json'|'$run/targets/*.json'|" -e "s|^  - rules.yml|  - $root/infra/prometheus/rules.yml|" \
    "$root/infra/prometheus/prometheus.yml" >"$run/prometheus.yml"
  local prom_url=""
  if [ "$prometheus" -eq 1 ]; then
    local prom_port=$((port + workers + 3))
    prometheus --config.file="$run/prometheus.yml" --storage.tsdb.path="$run/prometheus" \
      --web.listen-address="127.0.0.1:$prom_port" >"$run/prometheus.log" 2>&1 &
    echo $! >"$run/prometheus.pid"
    prom_url="http://127.0.0.1:$prom_port"
    wait_ready "$prom_url/-/ready" 30 "$(cat "$run/prometheus.pid")" || { tail -20 "$run/prometheus.log" >&2; down; die "prometheus did not start"; }
  fi
  local list
  list=$(IFS=,; echo "${entries[*]}")
  printf '{"front":"http://127.0.0.1:%s","redis":"redis://127.0.0.1:%s","haproxyStats":"http://127.0.0.1:%s/stats","prometheus":"%s","workers":[%s]}\n' \
    "$port" "$redis_port" "$stats_port" "$prom_url" "$list" >"$run/workers.json"
  echo "http://127.0.0.1:$port/"
}

# Stops a process from its pid file: SIGTERM, then SIGKILL after 15 s.
stop_pid() {
  local file=$1 pid i
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

down() {
  [ -d "$run" ] || return 0
  stop_pid "$run/haproxy.pid"
  stop_pid "$run/prometheus.pid"
  local f
  for f in "$run"/w*.pid; do stop_pid "$f"; done
  stop_pid "$run/redis.pid"
  rm -rf "$run"
}

case ${1:-} in
  up) shift; up "$@" ;;
  down) down ;;
  *) die "usage: cluster.sh up --workers N --port P [--model DIR] [-- SERVE_FLAGS...] | cluster.sh down" ;;
esac
