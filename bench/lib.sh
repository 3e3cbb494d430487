# shellcheck shell=bash
# shellcheck disable=SC2034 # many variables set here are read by the scripts that source this
# Shared pieces of the benchmark scripts in this folder (bench/find-destination,
# bench/token-cache). Sourced, never run: the script sets BENCH_NAME (its name, for messages) and
# `set -Eeuo pipefail`, then sources this file, which installs the cleanup traps at once.
#
# What a script gets, in the order it usually uses it:
#   require_tools               curl, python3, wrk and nginx (installs the last two as root)
#   build_signpost              BIN: the release server (or $SIGNPOST_BIN)
#   make_work                   WORK: a fresh temp dir with WORK/data for the server
#   start_signpost              SERVER_PID, PORT, BASE: `signpost serve` on loopback, healthy, with
#                               the broker credentials and the VAR=VALUE words of SIGNPOST_ENV
#   provision_bind_token FILE   provisions an instance with the destinations (JSON array) in FILE,
#                               binds it and gets a token: TOKEN, API_BASE, WORK/auth.lua
#   fetch_find_body             the find response of $FIND_PATH once, checked: SIGNPOST_URL,
#                               BODY_FILE, BODY_BYTES
#   measure_signpost_then_nginx wrk on SIGNPOST_URL (then after_signpost_run, when the script
#                               defines it), signpost stopped, nginx started
#                               serving BODY_FILE at FIND_PATH, the same wrk on it, nginx stopped;
#                               reports in WORK/wrk-{signpost,nginx}.txt, WORK/cpu-*.json. With
#                               BENCH_ROUNDS above 1, both run side by side and are loaded in
#                               turn, one report per round (WORK/wrk-LABEL-rN.txt, ...), of which
#                               compare_runs takes each one's median round by rate
#   run_tracked PIDVAR LOG WHAT CMD..
#                               CMD in the background, stopped on exit, dies with LOG on failure
#   new_result_file NAME        STAMP, RESULT_FILE (bench/results/NAME-STAMP.json)
#   compare_runs FILE EXTRA     signpost vs nginx figures: prints them, writes the JSON
#   check_valid STATUS FILE     dies unless compare_runs said the run is valid
#   stop_pid PID                TERM, then KILL after 5 s
# Processes whose pid variables are named in BENCH_PID_VARS are stopped on every exit.

BENCH_NAME=${BENCH_NAME:-bench}
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
WARMUP=${BENCH_WARMUP:-2s}
RESULTS_DIR=${BENCH_RESULTS_DIR:-$BENCH_DIR/results}
START_TIMEOUT=${BENCH_START_TIMEOUT:-60}
# Rounds of measure_signpost_then_nginx (1: signpost, then nginx, once).
ROUNDS=${BENCH_ROUNDS:-1}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_ROUNDS must be a positive whole number" >&2; exit 1; }
# nginx worker processes of the reference (issue 17 compares with one).
NGINX_WORKERS=${BENCH_NGINX_WORKERS:-2}
[[ $NGINX_WORKERS =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_NGINX_WORKERS must be a positive whole number" >&2; exit 1; }
BROKER_USER=bench
BROKER_PASSWORD=benchpw

log() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: error: %s\n' "$BENCH_NAME" "$*" >&2; exit 1; }

# ---------------------------------------------------------------- cleanup
WORK=""
SERVER_PID=""
NGINX_PID=""
WRK_PID=""
# Names of the variables holding the pids of the processes to stop on exit, stopped in this order.
BENCH_PID_VARS=(WRK_PID NGINX_PID SERVER_PID)

# stop_pid PID: TERM, wait up to 5 s, then KILL; also KILL any of its children that outlive it
# (only processes this script started, matched by id and name).
stop_pid() {
  local pid=$1 child comm
  local -a children=()
  [[ -n $pid ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    for child in $(pgrep -P "$pid" 2>/dev/null || true); do
      comm=$(cat "/proc/$child/comm" 2>/dev/null || true)
      [[ -n $comm ]] && children+=("$child:$comm")
    done
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  wait "$pid" 2>/dev/null || true
  for child in "${children[@]}"; do
    for _ in $(seq 20); do
      [[ $(cat "/proc/${child%%:*}/comm" 2>/dev/null || true) == "${child#*:}" ]] || break
      sleep 0.1
    done
    if [[ $(cat "/proc/${child%%:*}/comm" 2>/dev/null || true) == "${child#*:}" ]]; then
      kill -KILL "${child%%:*}" 2>/dev/null || true
    fi
  done
}

cleanup() {
  local rc=$? var
  trap - EXIT INT TERM
  for var in "${BENCH_PID_VARS[@]}"; do
    stop_pid "${!var:-}"
  done
  if [[ -n $WORK && -d $WORK ]]; then
    if [[ ${BENCH_KEEP_TMP:-0} == 1 ]]; then
      log "kept temp dir $WORK"
    else
      rm -rf "$WORK"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- tools
find_nginx() { command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true; }

# require_tools: curl and python3 must be there; wrk and nginx (WRK, NGINX) are installed with
# apt-get when missing and the script runs as root.
require_tools() {
  command -v curl >/dev/null || die "curl is required"
  command -v python3 >/dev/null || die "python3 is required"
  WRK=$(command -v wrk 2>/dev/null || true)
  NGINX=$(find_nginx)
  if [[ -z $WRK || -z $NGINX ]]; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      log "installing wrk and nginx (Debian packages)"
      DEBIAN_FRONTEND=noninteractive apt-get install -y wrk nginx >&2 ||
        { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y wrk nginx >&2; } ||
        die "apt-get install wrk nginx failed"
      WRK=$(command -v wrk 2>/dev/null || true)
      NGINX=$(find_nginx)
    fi
    if [[ -z $WRK || -z $NGINX ]]; then
      cat >&2 <<EOF
$BENCH_NAME: wrk and nginx are required. On Debian or Ubuntu:
    sudo apt-get install -y wrk nginx
(the nginx package's system service is not used; the benchmark starts its own nginx)
EOF
      exit 1
    fi
  fi
  CORES=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)
}

# ---------------------------------------------------------------- helpers
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# rss_kb PID / hwm_kb PID: resident memory of a process now, and its peak, in KiB.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

new_uuid() { python3 -c 'import uuid; print(uuid.uuid4())'; }

# jget FILE DOTTED.PATH: print a string or number from a JSON file (lists indexed by number).
jget() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
with open(sys.argv[1], encoding="utf-8") as f:
    v = json.load(f)
for part in sys.argv[2].split("."):
    try:
        v = v[int(part)] if isinstance(v, list) else v[part]
    except (KeyError, IndexError, ValueError, TypeError):
        sys.exit(f"missing field {sys.argv[2]!r} in {sys.argv[1]}")
if isinstance(v, (dict, list)) or v is None or v == "":
    sys.exit(f"field {sys.argv[2]!r} in {sys.argv[1]} is not a non-empty scalar")
print(v)
EOF
}

# req METHOD URL OUTFILE [curl args...]: print the HTTP status; body goes to OUTFILE.
# https on this machine is the server's own throwaway certificate, so it is not verified.
req() {
  local method=$1 url=$2 out=$3
  shift 3
  local -a tls=()
  [[ $url == https://* ]] && tls=(--insecure)
  local code
  code=$(curl -sS --max-time 30 "${tls[@]}" -X "$method" -o "$out" -w '%{http_code}' "$@" "$url") || code=000
  echo "$code"
}

# check_status WHAT GOT WANT BODYFILE
check_status() {
  if [[ $2 != "$3" ]]; then
    printf '%s: %s: HTTP %s, expected %s; body:\n' "$BENCH_NAME" "$1" "$2" "$3" >&2
    head -c 2000 "$4" >&2 2>/dev/null || true
    echo >&2
    exit 1
  fi
}

# wait_ready PID WHAT LOGFILE COMMAND...: poll COMMAND every 0.2 s until it succeeds; die with the
# log's tail when PID exits first or START_TIMEOUT passes.
wait_ready() {
  local pid=$1 what=$2 logfile=$3 deadline=$((SECONDS + START_TIMEOUT))
  shift 3
  until "$@"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$logfile" >&2 || true
      die "$what exited before it was ready"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 40 "$logfile" >&2 || true
      die "$what was not ready within ${START_TIMEOUT}s"
    fi
    sleep 0.2
  done
}

# run_tracked PIDVAR LOGFILE WHAT COMMAND...: runs COMMAND in the background with its pid in the
# variable PIDVAR (named in BENCH_PID_VARS, so that an exit stops it) and waits for it; when it
# fails, prints LOGFILE and dies.
run_tracked() {
  local pidvar=$1 logfile=$2 what=$3 rc=0 pid
  shift 3
  "$@" &
  pid=$!
  printf -v "$pidvar" '%s' "$pid"
  wait "$pid" || rc=$?
  printf -v "$pidvar" '%s' ""
  if ((rc != 0)); then
    cat "$logfile" >&2
    die "$what failed (exit $rc)"
  fi
}

# timed_wrk URL DURATION OUTFILE: wrk's report goes to OUTFILE, its user and system CPU seconds
# (bash's `time`) to OUTFILE.cpu. WRK_SCRIPT replaces the Lua script (default: WORK/auth.lua).
timed_wrk() {
  (
    TIMEFORMAT='%3U %3S'
    time "$WRK" -t"$THREADS" -c"$CONNECTIONS" -d"$2" --latency -s "${WRK_SCRIPT:-$WORK/auth.lua}" "$1" >"$3" 2>&1
  ) 2>"$3.cpu"
}

# run_wrk LABEL URL DURATION OUTFILE
run_wrk() { run_tracked WRK_PID "$4" "wrk against $1" timed_wrk "$2" "$3" "$4"; }

# cpu_snapshot OUTFILE PID: machine-wide CPU ticks and those of PID and its children, as JSON.
cpu_snapshot() {
  python3 - "$@" <<'PYEOF'
import json, os, sys, time
out, pid = sys.argv[1], sys.argv[2]
def ticks(p):
    try:
        with open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0
pids = {pid}
try:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        pids.update(f.read().split())
except OSError:
    pass
with open("/proc/stat") as f:
    v = [int(x) for x in f.readline().split()[1:]]
json.dump({"mono": time.monotonic(), "total": sum(v), "idle": v[3] + v[4],
           "server": sum(ticks(p) for p in pids), "hz": os.sysconf("SC_CLK_TCK")}, open(out, "w"))
PYEOF
}

# measure LABEL URL SERVER_PID: optional warm-up, then the measured run; wrk's report lands in
# $WORK/wrk-LABEL.txt and the CPU used by the server, wrk and everything else in $WORK/cpu-LABEL.json.
measure() {
  if [[ $WARMUP != 0 && $WARMUP != 0s ]]; then
    log "$1: warm-up ${WARMUP}"
    run_wrk "$1" "$2" "$WARMUP" "$WORK/wrk-$1-warmup.txt"
  fi
  log "$1: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency $2"
  cpu_snapshot "$WORK/cpu-$1-before.json" "$3"
  run_wrk "$1" "$2" "$DURATION" "$WORK/wrk-$1.txt"
  cpu_snapshot "$WORK/cpu-$1-after.json" "$3"
  cat "$WORK/wrk-$1.txt" >&2
  python3 - "$WORK/cpu-$1-before.json" "$WORK/cpu-$1-after.json" "$WORK/wrk-$1.txt.cpu" "$WORK/cpu-$1.json" <<'PYEOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
hz, secs = a["hz"], max(b["mono"] - a["mono"], 1e-3)
wrk_line = open(sys.argv[3]).read().split()
wrk = sum(float(x) for x in wrk_line[-2:]) / secs if len(wrk_line) >= 2 else 0.0
busy = ((b["total"] - a["total"]) - (b["idle"] - a["idle"])) / hz / secs
server = (b["server"] - a["server"]) / hz / secs
json.dump({"server": round(server, 2), "wrk": round(wrk, 2), "other": round(max(busy - server - wrk, 0.0), 2)},
          open(sys.argv[4], "w"))
PYEOF
}

# ---------------------------------------------------------------- build
build_signpost() {
  if [[ -n ${SIGNPOST_BIN:-} ]]; then
    BIN=$SIGNPOST_BIN
    log "using prebuilt server $BIN"
  else
    log "building the release server: cargo build --release -p signpost"
    (cd "$ROOT" && cargo build --release -p signpost) >&2
    local target_dir=${CARGO_TARGET_DIR:-target}
    [[ $target_dir == /* ]] || target_dir=$ROOT/$target_dir
    BIN=$target_dir/release/signpost
  fi
  [[ -x $BIN ]] || die "server binary $BIN not found or not executable"
}

make_work() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/signpost-bench.XXXXXX")
  # nginx workers may run as another user when started as root: they must reach the body file.
  chmod 755 "$WORK"
  mkdir -m 700 "$WORK/data"
}

# ---------------------------------------------------------------- signpost
http_ok() { [[ $(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$1" || true) == 200 ]]; }

# Extra environment of the server, VAR=VALUE words: BENCH_SIGNPOST_ENV's (e.g.
# "SIGNPOST_WORKER_THREADS=1"), to which a script may add its own.
read -r -a SIGNPOST_ENV <<<"${BENCH_SIGNPOST_ENV:-}"
for word in "${SIGNPOST_ENV[@]}"; do
  [[ $word == SIGNPOST_*=* ]] || { echo "BENCH_SIGNPOST_ENV takes SIGNPOST_VAR=VALUE words, not '$word'" >&2; exit 1; }
done

# start_signpost: the server on a free loopback port with the broker credentials and the extra
# environment in SIGNPOST_ENV; returns once /healthz answers 200.
start_signpost() {
  PORT=$(free_port)
  BASE=http://127.0.0.1:$PORT
  log "starting signpost on $BASE (data dir $WORK/data, log $WORK/signpost.log)"
  env SIGNPOST_BROKER_USER=$BROKER_USER SIGNPOST_BROKER_PASSWORD=$BROKER_PASSWORD "${SIGNPOST_ENV[@]}" \
    "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" >"$WORK/signpost.log" 2>&1 &
  SERVER_PID=$!
  wait_ready "$SERVER_PID" "signpost (GET /healthz)" "$WORK/signpost.log" http_ok "$BASE/healthz"
  log "signpost is healthy"
}

# ---------------------------------------------------------------- provision, bind, token
# provision_bind_token DESTINATIONS_FILE: through the Open Service Broker API, provisions an
# instance whose configuration JSON creates the instance-level destinations in the file (a JSON
# array), binds it and gets a token with the binding's client credentials.
provision_bind_token() {
  local -a broker=(-u "$BROKER_USER:$BROKER_PASSWORD" -H 'X-Broker-API-Version: 2.17')
  local code service_id plan_id instance_id binding_id client_id client_secret token_base

  code=$(req GET "$BASE/v2/catalog" "$WORK/catalog.json" "${broker[@]}")
  check_status "GET /v2/catalog" "$code" 200 "$WORK/catalog.json"
  service_id=$(jget "$WORK/catalog.json" services.0.id)
  plan_id=$(jget "$WORK/catalog.json" services.0.plans.0.id)

  instance_id=$(new_uuid)
  binding_id=$(new_uuid)
  python3 - "$service_id" "$plan_id" "$1" >"$WORK/provision.json" <<'EOF'
import json, sys
service_id, plan_id, dests = sys.argv[1:4]
print(json.dumps({
    "service_id": service_id,
    "plan_id": plan_id,
    "organization_guid": "org-1",
    "space_guid": "space-1",
    "context": {"platform": "cloudfoundry", "subaccount_id": "bench-subaccount", "subdomain": "bench"},
    "parameters": {"init_data": {"instance": {"destinations": json.load(open(dests, encoding="utf-8"))}}},
}))
EOF
  chmod 600 "$WORK/provision.json"
  python3 -c 'import json, sys; print(json.dumps({"service_id": sys.argv[1], "plan_id": sys.argv[2]}))' \
    "$service_id" "$plan_id" >"$WORK/bind.json"

  log "provisioning instance $instance_id"
  code=$(req PUT "$BASE/v2/service_instances/$instance_id" "$WORK/provision-response.json" "${broker[@]}" \
    -H 'Content-Type: application/json' --data-binary "@$WORK/provision.json")
  check_status "PUT /v2/service_instances/{id}" "$code" 201 "$WORK/provision-response.json"

  log "binding $binding_id"
  code=$(req PUT "$BASE/v2/service_instances/$instance_id/service_bindings/$binding_id" "$WORK/binding.json" \
    "${broker[@]}" -H 'Content-Type: application/json' --data-binary "@$WORK/bind.json")
  check_status "PUT /v2/service_instances/{id}/service_bindings/{id}" "$code" 201 "$WORK/binding.json"
  chmod 600 "$WORK/binding.json"
  client_id=$(jget "$WORK/binding.json" credentials.clientid)
  client_secret=$(jget "$WORK/binding.json" credentials.clientsecret)
  token_base=$(jget "$WORK/binding.json" credentials.url)
  API_BASE=$(jget "$WORK/binding.json" credentials.uri)
  token_base=${token_base%/}
  API_BASE=${API_BASE%/}

  log "getting a token from $token_base/oauth/token"
  code=$(req POST "$token_base/oauth/token" "$WORK/token.json" \
    -H 'Content-Type: application/x-www-form-urlencoded' \
    --data-urlencode grant_type=client_credentials \
    --data-urlencode "client_id=$client_id" \
    --data-urlencode "client_secret=$client_secret")
  check_status "POST /oauth/token" "$code" 200 "$WORK/token.json"
  chmod 600 "$WORK/token.json"
  TOKEN=$(jget "$WORK/token.json" access_token)
  [[ $TOKEN =~ ^[A-Za-z0-9._~+/=-]+$ ]] || die "access_token has unexpected characters"

  printf 'wrk.method = "GET"\nwrk.headers["Authorization"] = "Bearer %s"\n' "$TOKEN" >"$WORK/auth.lua"
  chmod 600 "$WORK/auth.lua"
  SIGNPOST_URL=$API_BASE$FIND_PATH
}

# ---------------------------------------------------------------- the response once
# fetch_find_body: GET $SIGNPOST_URL once into BODY_FILE (under $WORK/www, where nginx serves it)
# and check it is 200 with destinationConfiguration.Name == $DEST_NAME.
fetch_find_body() {
  local code
  mkdir -p "$WORK/www$(dirname "$FIND_PATH")"
  BODY_FILE=$WORK/www$FIND_PATH
  log "fetching $SIGNPOST_URL once"
  code=$(req GET "$SIGNPOST_URL" "$BODY_FILE" -H "Authorization: Bearer $TOKEN" -D "$WORK/find-headers.txt")
  check_status "GET $FIND_PATH" "$code" 200 "$BODY_FILE"
  python3 - "$BODY_FILE" "$DEST_NAME" <<'EOF' || die "the find response is not the expected JSON"
import json, sys
body = json.load(open(sys.argv[1], encoding="utf-8"))
name = body.get("destinationConfiguration", {}).get("Name")
if name != sys.argv[2]:
    sys.exit(f"destinationConfiguration.Name is {name!r}, expected {sys.argv[2]!r}")
EOF
  chmod 644 "$BODY_FILE"
  BODY_BYTES=$(wc -c <"$BODY_FILE")
  log "find response: $BODY_BYTES bytes, $(grep -i '^content-type:' "$WORK/find-headers.txt" | tr -d '\r' || true)"
}

# ---------------------------------------------------------------- idle check
# Other work on the machine skews both figures: sample how busy the CPUs are for 1 s while the
# servers idle, record it in the JSON and warn above 10 %.
sample_cpu_busy() {
  CPU_BUSY=$(python3 - <<'PYEOF'
import time
def sample():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]  # total, idle + iowait
try:
    t0, i0 = sample(); time.sleep(1); t1, i1 = sample()
    print(round(100.0 * (1 - (i1 - i0) / max(t1 - t0, 1)), 1))
except OSError:
    print(-1)
PYEOF
  )
  if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > 10 else 1)' "$CPU_BUSY"; then
    log "warning: the CPUs were ${CPU_BUSY}% busy with other work just before the run: figures will be noisy"
  fi
}

# ---------------------------------------------------------------- nginx, same body, same scheme
nginx_serves_body() {
  local code
  code=$(req GET "$NGINX_URL" "$WORK/nginx-body.json" -H "Authorization: Bearer $TOKEN" -D "$WORK/nginx-headers.txt")
  [[ $code == 200 ]]
}

# start_nginx_with_body: nginx as a non-daemon master in its own prefix on a free loopback port,
# serving BODY_FILE at FIND_PATH over the scheme of SIGNPOST_URL; checks the body is identical.
start_nginx_with_body() {
  SCHEME=${SIGNPOST_URL%%://*}
  local nport listen tls_conf
  nport=$(free_port)
  NGINX_URL=$SCHEME://127.0.0.1:$nport$FIND_PATH
  mkdir -p "$WORK/nginx/logs" "$WORK/nginx/tmp"
  listen="listen 127.0.0.1:$nport;"
  tls_conf=""
  if [[ $SCHEME == https ]]; then
    command -v openssl >/dev/null || die "openssl is required to give nginx the same https as signpost"
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
      -keyout "$WORK/nginx/key.pem" -out "$WORK/nginx/cert.pem" 2>/dev/null
    listen="listen 127.0.0.1:$nport ssl;"
    tls_conf="ssl_certificate $WORK/nginx/cert.pem; ssl_certificate_key $WORK/nginx/key.pem;"
  fi
  cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $NGINX_WORKERS;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/tmp/client_body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    open_file_cache max=16 inactive=60s;
    server {
        $listen
        $tls_conf
        server_name localhost;
        root $WORK/www;
        location / {
            types { }
            default_type application/json;
        }
    }
}
EOF
  NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
  "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/logs/error.log" -c "$WORK/nginx/nginx.conf" -t >/dev/null 2>&1 ||
    { "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/logs/error.log" -c "$WORK/nginx/nginx.conf" -t >&2 || true; die "nginx config test failed"; }
  log "starting $NGINX_VERSION on $SCHEME://127.0.0.1:$nport (worker_processes $NGINX_WORKERS)"
  "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/logs/error.log" -c "$WORK/nginx/nginx.conf" \
    >"$WORK/nginx/logs/stdout.log" 2>&1 &
  NGINX_PID=$!
  wait_ready "$NGINX_PID" "nginx (serving the body)" "$WORK/nginx/logs/error.log" nginx_serves_body
  cmp -s "$BODY_FILE" "$WORK/nginx-body.json" || die "nginx does not serve the identical body"
  grep -qi '^content-type: application/json' "$WORK/nginx-headers.txt" || die "nginx content type is not application/json"
}

# ---------------------------------------------------------------- both servers
# measure_signpost_then_nginx: samples how busy the machine is, loads signpost (then calls the
# function after_signpost_run, when the script defines one, while signpost still runs), stops it,
# starts nginx with the same body, loads it with the identical wrk command and stops it.
measure_signpost_then_nginx() {
  sample_cpu_busy
  if ((ROUNDS > 1)); then
    measure_in_rounds
    return
  fi
  measure signpost "$SIGNPOST_URL" "$SERVER_PID"
  if declare -F after_signpost_run >/dev/null; then after_signpost_run; fi
  log "stopping signpost"
  stop_pid "$SERVER_PID"
  SERVER_PID=""

  start_nginx_with_body
  measure nginx "$NGINX_URL" "$NGINX_PID"
  log "stopping nginx"
  stop_pid "$NGINX_PID"
  NGINX_PID=""
}

# measure_in_rounds: nginx started beside signpost, then ROUNDS rounds, each loading both with the
# identical wrk command, signpost first in odd rounds and nginx first in even ones (warm-ups in
# the first round only), so that a slow minute of the machine hits both; then after_signpost_run,
# both stopped. The reports are WORK/wrk-LABEL-rN.txt and cpu-LABEL-rN.json; compare_runs takes each
# one's median round from them.
measure_in_rounds() {
  local r label warmup=$WARMUP
  start_nginx_with_body
  for ((r = 1; r <= ROUNDS; r++)); do
    local -a order=(signpost nginx)
    ((r % 2 == 0)) && order=(nginx signpost)
    for label in "${order[@]}"; do
      log "round $r of $ROUNDS: $label"
      if [[ $label == signpost ]]; then
        measure "signpost-r$r" "$SIGNPOST_URL" "$SERVER_PID"
      else
        measure "nginx-r$r" "$NGINX_URL" "$NGINX_PID"
      fi
    done
    WARMUP=0
  done
  WARMUP=$warmup
  if declare -F after_signpost_run >/dev/null; then after_signpost_run; fi
  log "stopping signpost and nginx"
  stop_pid "$SERVER_PID"
  SERVER_PID=""
  stop_pid "$NGINX_PID"
  NGINX_PID=""
}

# ---------------------------------------------------------------- figures
# new_result_file NAME: STAMP (UTC) and RESULT_FILE=$RESULTS_DIR/NAME-STAMP.json.
new_result_file() {
  mkdir -p "$RESULTS_DIR"
  STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
  RESULT_FILE=$RESULTS_DIR/$1-$STAMP.json
}

# compare_runs RESULT_FILE EXTRA_FILE: reads $WORK/wrk-{signpost,nginx}.txt and their CPU figures,
# prints the comparison and writes the result JSON. EXTRA_FILE is a JSON object: "benchmark",
# "title" (first word of the table's heading), "request" (merged into the request section),
# "problems" (more reasons the run is not valid); every other key is copied into the result.
# Returns 0, or 2 when the run is not valid ("valid": false), or 1 when wrk's output is unreadable.
compare_runs() {
  local wrk_version git_rev
  wrk_version=$("$WRK" -v 2>&1 | head -n 1 | sed 's/ Copyright.*//' || true)
  git_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)
  [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null || true) ]] && git_rev=$git_rev-dirty
  python3 - "$WORK" "$1" "$2" <<EOF
import json, os, re, sys

work, result_file, extra_file = sys.argv[1:4]
extra = json.load(open(extra_file, encoding="utf-8"))
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}

def parse(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    out = {"percentiles_ms": {}}
    m = re.search(r"^Requests/sec:\s+([0-9.]+)\s*$", text, re.M)
    if not m:
        sys.exit(f"no Requests/sec line in {path}")
    out["requests_per_sec"] = float(m.group(1))
    for pct, value, unit in re.findall(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([0-9.]+)(us|ms|s|m|h)\s*$", text, re.M):
        out["percentiles_ms"][pct] = round(float(value) * UNIT_MS[unit], 4)
    if "99" not in out["percentiles_ms"]:
        sys.exit(f"no 99% latency line in {path} (was --latency given?)")
    out["p99_ms"] = out["percentiles_ms"]["99"]
    m = re.search(r"^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m|h)", text, re.M)
    if m:
        out["requests"] = int(m.group(1))
        out["elapsed_s"] = round(float(m.group(2)) * UNIT_MS[m.group(3)] / 1000.0, 3)
    m = re.search(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", text, re.M)
    out["non_2xx_3xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                    map(int, m.groups()) if m else (0, 0, 0, 0)))
    return out

def load(label, suffix=""):
    r = parse(f"{work}/wrk-{label}{suffix}.txt")
    r["cpu_cores"] = json.load(open(f"{work}/cpu-{label}{suffix}.json"))
    return r

# With rounds (measure_in_rounds): each one's median round by rate (of an even count, the lower
# middle one) is its figure, and every round is checked and kept in "rounds".
count = int("$ROUNDS")
rounds = None
checked = []
if os.path.exists(f"{work}/wrk-signpost-r1.txt"):
    rounds = {}
    for label in ("signpost", "nginx"):
        per = [load(label, f"-r{i}") for i in range(1, count + 1)]
        median = sorted(range(count), key=lambda i: per[i]["requests_per_sec"])[(count - 1) // 2]
        rounds[label] = {"median_round": median + 1, "figures": per[median],
                         "requests_per_sec": [r["requests_per_sec"] for r in per],
                         "p99_ms": [r["p99_ms"] for r in per]}
        checked += [(f"{label} round {i + 1}", r) for i, r in enumerate(per)]
    s, n = rounds["signpost"].pop("figures"), rounds["nginx"].pop("figures")
    rounds["rate_ratio_per_round"] = [
        round(a / b, 3) if b else None
        for a, b in zip(rounds["signpost"]["requests_per_sec"], rounds["nginx"]["requests_per_sec"])]
else:
    s, n = load("signpost"), load("nginx")
    checked = [("signpost", s), ("nginx", n)]
noisy = [f"{name}: other processes used {r['cpu_cores']['other']} cores during the run"
         for name, r in (("signpost", s), ("nginx", n)) if r["cpu_cores"]["other"] > 0.1]
problems = [f"{name}: {r['non_2xx_3xx']} non-2xx/3xx responses" for name, r in checked if r["non_2xx_3xx"]]
problems += [f"{name}: socket errors {r['socket_errors']}" for name, r in checked
             if any(r["socket_errors"].values())]
problems += extra.pop("problems", [])
rate_ratio = s["requests_per_sec"] / n["requests_per_sec"] if n["requests_per_sec"] else None
p99_ratio = s["p99_ms"] / n["p99_ms"] if n["p99_ms"] else None
title = extra.pop("title")
result = {
    "benchmark": extra.pop("benchmark"),
    "date": "$STAMP",
    "valid": not problems,
    "problems": problems,
    "noisy": noisy,
    "machine": {"cores": int("$CORES"), "shared": "wrk, signpost and nginx run on the same cores",
                "cpu_busy_percent_before": float("$CPU_BUSY")},
    "load": {"tool": "$wrk_version", "threads": int("$THREADS"), "connections": int("$CONNECTIONS"),
             "duration": "$DURATION", "warmup": "$WARMUP"},
    "request": {"method": "GET", "path": "$FIND_PATH", "scheme": "$SCHEME", "body_bytes": int("$BODY_BYTES"),
                **extra.pop("request", {})},
    "signpost": {"git": "$git_rev", **s},
    "nginx": {"version": "$NGINX_VERSION", "worker_processes": int("$NGINX_WORKERS"), **n},
    "ratio": {"rate_signpost_over_nginx": round(rate_ratio, 4) if rate_ratio is not None else None,
              "p99_signpost_over_nginx": round(p99_ratio, 4) if p99_ratio is not None else None},
    **({"rounds": rounds} if rounds else {}),
    **extra,
}
with open(result_file, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=2)
    f.write("\n")

def fmt_ratio(x):
    return "n/a" if x is None else f"{x:.3f}"
print()
print(f"{title}, {result['request']['body_bytes']} byte body, {result['request']['scheme']}, "
      f"wrk -t{result['load']['threads']} -c{result['load']['connections']} -d{result['load']['duration']}, "
      f"{result['machine']['cores']} cores shared by wrk and the server")
print(f"{'':10} {'requests/s':>12} {'p50 ms':>9} {'p99 ms':>9}"
      + (f"   (each one's median round of {len(rounds['signpost']['requests_per_sec'])}, by rate)" if rounds else ""))
for name, r in (("signpost", s), ("nginx", n)):
    print(f"{name:10} {r['requests_per_sec']:12.1f} {r['percentiles_ms'].get('50', float('nan')):9.3f} {r['p99_ms']:9.3f}")
print(f"ratio signpost/nginx: rate {fmt_ratio(rate_ratio)}, p99 {fmt_ratio(p99_ratio)}")
if rounds:
    for name in ("signpost", "nginx"):
        print(f"{name} per round: requests/s {[round(x) for x in rounds[name]['requests_per_sec']]}, "
              f"p99 ms {rounds[name]['p99_ms']}")
    print(f"rate ratio per round: {rounds['rate_ratio_per_round']}")
for name, r in (("signpost", s), ("nginx", n)):
    c = r["cpu_cores"]
    print(f"CPU during the {name} run, in cores of {result['machine']['cores']}: "
          f"server {c['server']:.2f}, wrk {c['wrk']:.2f}, other processes {c['other']:.2f}")
for x in noisy:
    print(f"warning: {x}; figures are noisy, rerun on an idle machine")
print(f"written to {result_file}")
for p in problems:
    print(f"INVALID RUN: {p}", file=sys.stderr)
sys.exit(2 if problems else 0)
EOF
}

# check_valid STATUS RESULT_FILE: dies unless STATUS (of compare_runs) is 0.
check_valid() {
  case $1 in
    0) ;;
    2) die "the run is not valid (see above); figures kept in $2 with \"valid\": false" ;;
    *) die "could not read wrk's output; rerun with BENCH_KEEP_TMP=1 to inspect it" ;;
  esac
}
