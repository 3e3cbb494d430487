#!/usr/bin/env bash
# Benchmark of signpost-proxy, the transparent proxy: GET of a ~1 KB static file served by nginx,
#   nginx          straight from the upstream nginx (the ceiling),
#   nginx-proxy    through a second nginx as a reverse proxy that adds a fixed `Authorization`
#                  header (the destination's token, so the same bytes as signpost-proxy sends)
#                  and the same X-Forwarded-* headers (keep-alive upstream pool): the same job
#                  done by the fastest common tool,
#   signpost-proxy through signpost-proxy, whose route `backend.default` resolves the
#                  OAuth2ClientCredentials destination `backend-dest` from a real Signpost (token
#                  from the real OAuth server of e2e/oauth-server) and injects its token,
# all loaded by the same wrk command in interleaved rounds; then a streaming check: a 100 MB
# download through the proxy while its memory is watched. See bench/README.md.
#
# Usage: bench/proxy/run.sh
# Environment (all optional):
#   BENCH_ROUNDS=10            rounds; each round loads every target once, in rotated order
#   BENCH_DURATION=10s         wrk duration of each measured run
#   BENCH_CONNECTIONS=32       wrk connections
#   BENCH_THREADS=2            wrk threads
#   BENCH_WARMUP=2s            unmeasured wrk run per target before the first round ("0" skips)
#   BENCH_BODY_BYTES=1024      size of the static file
#   BENCH_STREAM_BYTES=100000000  size of the streaming check's download ("0" skips the check)
#   BENCH_NGINX_WORKERS=2      worker_processes of both nginx
#   BENCH_PROXY_ARGS=--allow-private-networks  extra arguments of signpost-proxy (the upstream
#                              is on loopback)
#   BENCH_WITHOUT_PROXY=1      check everything but the proxy (no proxy build or runs): the
#                              setup, both nginx, the wrk runs and the report, written to
#                              bench/results/proxy-setup-check-<stamp>.{txt,json}
#   BENCH_RESULTS_DIR, BENCH_START_TIMEOUT, BENCH_KEEP_TMP, SIGNPOST_BIN, CARGO_TARGET_DIR: as in
#   bench/find-destination
#   SIGNPOST_PROXY_BIN=PATH    use this proxy binary instead of building it
#   SIGNPOST_PROXY_REF_BIN=PATH  also load this second proxy binary (an older build, say) with the
#                              same configuration, as target `signpost-proxy-ref`, interleaved
#                              with the others; the report adds the ratio of the two proxies
#   BENCH_PIN=LOAD:SERVE       pin the load side (wrk, Signpost, the OAuth server) to the CPUs
#                              LOAD and the serving side (the upstream nginx, nginx-proxy and the
#                              proxies) to the CPUs SERVE, as taskset's lists: e.g. `0:1`. Unset:
#                              no pinning, the scheduler shares all cores among everything
set -Eeuo pipefail

BENCH_NAME=proxy
# shellcheck source=bench/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"
PROXY_BENCH_DIR=$BENCH_DIR/proxy

ROUNDS=${BENCH_ROUNDS:-10}
BODY_SIZE=${BENCH_BODY_BYTES:-1024}
STREAM_BYTES=${BENCH_STREAM_BYTES:-100000000}
NGINX_WORKERS=${BENCH_NGINX_WORKERS:-2}
WITHOUT_PROXY=${BENCH_WITHOUT_PROXY:-0}
read -r -a PROXY_ARGS <<<"${BENCH_PROXY_ARGS---allow-private-networks}"
PIN=${BENCH_PIN:-}
PIN_LOAD="" PIN_SERVE=""
if [[ -n $PIN ]]; then
  [[ $PIN =~ ^([0-9,-]+):([0-9,-]+)$ ]] || die "BENCH_PIN must be LOAD:SERVE CPU lists (e.g. 0:1), not '$PIN'"
  PIN_LOAD=${BASH_REMATCH[1]} PIN_SERVE=${BASH_REMATCH[2]}
  command -v taskset >/dev/null || die "BENCH_PIN needs taskset (util-linux)"
  taskset -c "$PIN_LOAD" true 2>/dev/null && taskset -c "$PIN_SERVE" true 2>/dev/null ||
    die "BENCH_PIN: the CPUs $PIN_LOAD or $PIN_SERVE are not available here"
fi

HOST_HEADER=backend.default # route `backend` in namespace `default`
INSTANCE=dest               # the proxy's destination service instance (credentials file name)
DEST_NAME=backend-dest      # the destination the route points to
BODY_PATH=/bench.txt
STREAM_PATH=/big.bin
OAUTH_CLIENT=bench-proxy-client
OAUTH_SECRET=bench-proxy-secret-4Fw
OAUTH_DIR=$ROOT/e2e/oauth-server

OAUTH_PID=""
UPSTREAM_PID=""
RP_PID=""
PROXY_PID=""
REF_PID=""
REF_BIN=${SIGNPOST_PROXY_REF_BIN:-}
BENCH_PID_VARS=(WRK_PID PROXY_PID REF_PID RP_PID UPSTREAM_PID "${BENCH_PID_VARS[@]}" OAUTH_PID)

for setting in ROUNDS BODY_SIZE STREAM_BYTES NGINX_WORKERS; do
  [[ ${!setting} =~ ^[0-9]+$ ]] || die "$setting must be a whole number, not '${!setting}'"
done
((ROUNDS >= 1 && BODY_SIZE >= 1 && NGINX_WORKERS >= 1)) || die "BENCH_ROUNDS, BENCH_BODY_BYTES and BENCH_NGINX_WORKERS must be positive"
[[ $WITHOUT_PROXY == 0 || $WITHOUT_PROXY == 1 ]] || die "BENCH_WITHOUT_PROXY must be 0 or 1"

require_tools
command -v node >/dev/null || die "node is required for the OAuth server (e2e/oauth-server)"

# ---------------------------------------------------------------- build
# build_binaries: BIN (signpost) and PROXY_BIN (signpost-proxy), prebuilt or from one
# `cargo build --release` of the packages not given.
build_binaries() {
  local -a packages=()
  local target_dir=${CARGO_TARGET_DIR:-target}
  [[ $target_dir == /* ]] || target_dir=$ROOT/$target_dir
  BIN=${SIGNPOST_BIN:-$target_dir/release/signpost}
  PROXY_BIN=${SIGNPOST_PROXY_BIN:-$target_dir/release/signpost-proxy}
  [[ -n ${SIGNPOST_BIN:-} ]] || packages+=(-p signpost)
  if [[ $WITHOUT_PROXY == 0 && -z ${SIGNPOST_PROXY_BIN:-} ]]; then
    [[ -f $ROOT/crates/signpost-proxy/Cargo.toml ]] ||
      die "there is no crates/signpost-proxy in this tree yet: nothing to benchmark (BENCH_WITHOUT_PROXY=1 checks the rest)"
    packages+=(-p signpost-proxy)
  fi
  if ((${#packages[@]})); then
    log "building: cargo build --release ${packages[*]}"
    (cd "$ROOT" && cargo build --release "${packages[@]}") >&2 || die "cargo build --release ${packages[*]} failed"
  fi
  [[ -x $BIN ]] || die "server binary $BIN not found or not executable"
  if [[ $WITHOUT_PROXY == 0 ]]; then
    [[ -x $PROXY_BIN ]] ||
      die "proxy binary $PROXY_BIN not found or not executable: build it (cargo build --release -p signpost-proxy) or set SIGNPOST_PROXY_BIN"
  fi
}

log "cores on this machine: $CORES (wrk, both nginx, signpost-proxy, signpost and the OAuth server all share them)"
build_binaries
make_work

# ---------------------------------------------------------------- the upstream's files
# bench.txt: BODY_SIZE bytes of text; big.bin: STREAM_BYTES bytes, byte i = i % 251 (the pattern
# of the tests' echo server); STREAM_SHA256 is its digest.
mkdir -p "$WORK/www"
STREAM_SHA256=$(python3 - "$WORK/www" "$BODY_SIZE" "$STREAM_BYTES" <<'PYEOF'
import hashlib, os, sys
www, body, stream = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
line = b"signpost-proxy benchmark body: the quick brown fox jumps over the lazy dog 0123456789\n"
with open(os.path.join(www, "bench.txt"), "wb") as f:
    f.write((line * (body // len(line) + 1))[:body])
block = bytes(i % 251 for i in range(251 * 4096))  # a whole number of periods: 1,028,096 bytes
digest, left = hashlib.sha256(), stream
with open(os.path.join(www, "big.bin"), "wb") as f:
    while left:
        part = block[: min(left, len(block))]
        f.write(part)
        digest.update(part)
        left -= len(part)
print(digest.hexdigest())
PYEOF
)
chmod 755 "$WORK/www"
chmod 644 "$WORK/www/bench.txt" "$WORK/www/big.bin"

# ---------------------------------------------------------------- nginx
NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')

# nginx_conf NAME PORT SERVER_BLOCK [HTTP_EXTRA]: WORK/NAME/nginx.conf, a non-daemon master with
# NGINX_WORKERS workers, its own pid file, logs and temp paths, tuned as bench/find-destination's.
nginx_conf() {
  local name=$1 port=$2 server=$3 extra=${4:-}
  local d=$WORK/$name
  mkdir -p "$d/logs" "$d/tmp"
  chmod 755 "$d"
  cat >"$d/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $NGINX_WORKERS;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $d/tmp/client_body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
$extra
    server {
        listen 127.0.0.1:$port;
        server_name localhost;
$server
    }
}
EOF
  "$NGINX" -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf" -t >/dev/null 2>&1 ||
    { "$NGINX" -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf" -t >&2 || true; die "nginx config test failed for $name"; }
}

# start_nginx NAME PIDVAR URL: starts WORK/NAME/nginx.conf and waits until URL answers 200.
start_nginx() {
  local name=$1 pidvar=$2 url=$3 d=$WORK/$1
  "$NGINX" -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf" >"$d/logs/stdout.log" 2>&1 &
  printf -v "$pidvar" '%s' "$!"
  wait_ready "${!pidvar}" "nginx ($name)" "$d/logs/error.log" http_ok "$url"
}

# The upstream: static files; /auth-echo answers with the Authorization header it received, so
# that the script can check what each proxy injected.
UP_PORT=$(free_port)
UPSTREAM_URL=http://127.0.0.1:$UP_PORT
nginx_conf upstream "$UP_PORT" "        root $WORK/www;
        location / {
            types { text/plain txt; }
            default_type application/octet-stream;
        }
        location = /auth-echo {
            default_type text/plain;
            return 200 \"\$http_authorization\";
        }"
log "starting $NGINX_VERSION as the upstream on $UPSTREAM_URL (worker_processes $NGINX_WORKERS)"
start_nginx upstream UPSTREAM_PID "$UPSTREAM_URL$BODY_PATH"


# ---------------------------------------------------------------- the OAuth server
if [[ ! -f $OAUTH_DIR/node_modules/oauth2-mock-server/package.json ]]; then
  command -v npm >/dev/null || die "npm is required to install the OAuth server (e2e/oauth-server)"
  log "installing the OAuth server's packages: npm ci in e2e/oauth-server"
  (cd "$OAUTH_DIR" && npm ci --no-audit --no-fund --loglevel=error) >&2
fi
OAUTH_VERSION=$(jget "$OAUTH_DIR/node_modules/oauth2-mock-server/package.json" version)
oauth_url_printed() { [[ -s $WORK/oauth.out ]] && grep -q '"url"' "$WORK/oauth.out"; }
log "starting the OAuth server (oauth2-mock-server $OAUTH_VERSION, log $WORK/oauth.log)"
node "$OAUTH_DIR/server.mjs" --port 0 >"$WORK/oauth.out" 2>"$WORK/oauth.log" &
OAUTH_PID=$!
wait_ready "$OAUTH_PID" "the OAuth server" "$WORK/oauth.log" oauth_url_printed
OAUTH_URL=$(jget "$WORK/oauth.out" url)
OAUTH_URL=${OAUTH_URL%/}
# Tokens for an hour: no token request falls into the measurements.
code=$(req POST "$OAUTH_URL/__config" "$WORK/oauth-config.json" -H 'Content-Type: application/json' \
  --data-binary "$(python3 -c 'import json, sys; print(json.dumps({"reset": True, "token_lifetime": 3600,
    "clients": [{"id": sys.argv[1], "secret": sys.argv[2]}]}))' "$OAUTH_CLIENT" "$OAUTH_SECRET")")
check_status "POST $OAUTH_URL/__config" "$code" 200 "$WORK/oauth-config.json"

# ---------------------------------------------------------------- signpost and the destination
# The first run on an empty data dir creates the default instance and writes its service key to
# WORK/data/default-service-key.json. The token service is on loopback: private networks allowed.
SIGNPOST_ENV=(SIGNPOST_ALLOW_PRIVATE_NETWORKS=true)
start_signpost
SERVICE_KEY=$WORK/data/default-service-key.json
[[ -s $SERVICE_KEY ]] || die "signpost wrote no first-run service key $SERVICE_KEY (see $WORK/signpost.log)"
KEY_URL=$(jget "$SERVICE_KEY" url)
KEY_URI=$(jget "$SERVICE_KEY" uri)
KEY_URL=${KEY_URL%/}
KEY_URI=${KEY_URI%/}

log "getting a token with the first-run service key from $KEY_URL/oauth/token"
code=$(req POST "$KEY_URL/oauth/token" "$WORK/token.json" \
  --data-urlencode grant_type=client_credentials \
  --data-urlencode "client_id=$(jget "$SERVICE_KEY" clientid)" \
  --data-urlencode "client_secret=$(jget "$SERVICE_KEY" clientsecret)")
check_status "POST /oauth/token" "$code" 200 "$WORK/token.json"
chmod 600 "$WORK/token.json"
TOKEN=$(jget "$WORK/token.json" access_token)

python3 - "$DEST_NAME" "$UPSTREAM_URL" "$OAUTH_URL/token" "$OAUTH_CLIENT" "$OAUTH_SECRET" >"$WORK/destination.json" <<'PYEOF'
import json, sys
name, url, token_url, client_id, client_secret = sys.argv[1:6]
print(json.dumps({
    "Name": name, "Type": "HTTP", "URL": url, "ProxyType": "Internet",
    "Authentication": "OAuth2ClientCredentials",
    "clientId": client_id, "clientSecret": client_secret, "tokenServiceURL": token_url,
}))
PYEOF
chmod 600 "$WORK/destination.json"
log "creating the subaccount destination $DEST_NAME (OAuth2ClientCredentials, URL $UPSTREAM_URL)"
code=$(req POST "$KEY_URI/destination-configuration/v1/subaccountDestinations" "$WORK/create.out" \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' --data-binary "@$WORK/destination.json")
check_status "POST /destination-configuration/v1/subaccountDestinations" "$code" 201 "$WORK/create.out"

code=$(req GET "$KEY_URI/destination-configuration/v1/destinations/$DEST_NAME" "$WORK/find.json" \
  -H "Authorization: Bearer $TOKEN")
check_status "GET /destination-configuration/v1/destinations/$DEST_NAME" "$code" 200 "$WORK/find.json"
chmod 600 "$WORK/find.json"
python3 - "$WORK/find.json" "$UPSTREAM_URL" <<'PYEOF' || die "the find of the destination is not what the proxy needs"
import json, sys
body = json.load(open(sys.argv[1], encoding="utf-8"))
url = body.get("destinationConfiguration", {}).get("URL")
if url != sys.argv[2]:
    sys.exit(f"destinationConfiguration.URL is {url!r}, expected {sys.argv[2]!r}")
tokens = body.get("authTokens") or []
if not tokens or tokens[0].get("error") or tokens[0].get("type") != "Bearer" or not tokens[0].get("value"):
    sys.exit(f"authTokens[0] is not a Bearer token from the OAuth server: {tokens[:1]}")
PYEOF
log "find of $DEST_NAME: 200 with a Bearer token from the OAuth server"

# The reference proxy: nginx adding the same fixed Authorization header that signpost-proxy
# injects (the destination's token, read from the find above) and the same X-Forwarded-* headers,
# with a keep-alive pool to the upstream: both proxies send the upstream the same request, so
# that the upstream, which shares the proxies' cores, does the same work for each.
BEARER=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["authTokens"][0]["value"])' "$WORK/find.json")
[[ $BEARER =~ ^[A-Za-z0-9._~+/=-]+$ ]] || die "the destination's token is not a plain bearer token"
RP_PORT=$(free_port)
RP_URL=http://127.0.0.1:$RP_PORT
nginx_conf nginx-proxy "$RP_PORT" "        location / {
            proxy_pass http://upstream_pool;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host 127.0.0.1:$UP_PORT;
            proxy_set_header Authorization \"Bearer $BEARER\";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Host \$http_host;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_max_temp_file_size 0;
        }" "    upstream upstream_pool {
        server 127.0.0.1:$UP_PORT;
        keepalive 32;
        keepalive_requests 1000000;
    }"
chmod 600 "$WORK/nginx-proxy/nginx.conf"
log "starting nginx as a reverse proxy on $RP_URL (the destination's Authorization and X-Forwarded-*, keepalive 32)"
start_nginx nginx-proxy RP_PID "$RP_URL$BODY_PATH"

# ---------------------------------------------------------------- signpost-proxy
PROXY_URL=""
if [[ $WITHOUT_PROXY == 0 ]]; then
  mkdir -m 700 "$WORK/credentials"
  install -m 600 "$SERVICE_KEY" "$WORK/credentials/$INSTANCE.json"
  cat >"$WORK/proxy.yaml" <<EOF
config:
  integration:
    destinationService:
      defaultInstanceName: $INSTANCE
      instances:
        - name: $INSTANCE
          serviceCredentials: {secretName: unused, secretKey: unused}
destinations:
  - name: ${HOST_HEADER%%.*}
    namespace: ${HOST_HEADER#*.}
    spec:
      destinationRef: {name: $DEST_NAME}
EOF
  PROXY_PORT=$(free_port)
  ADMIN_PORT=$(free_port)
  while [[ $ADMIN_PORT == "$PROXY_PORT" ]]; do ADMIN_PORT=$(free_port); done
  PROXY_URL=http://127.0.0.1:$PROXY_PORT
  log "starting signpost-proxy on $PROXY_URL (admin 127.0.0.1:$ADMIN_PORT, log $WORK/proxy.log)"
  env SIGNPOST_ALLOW_PRIVATE_NETWORKS=true "$PROXY_BIN" --config "$WORK/proxy.yaml" \
    --listen "127.0.0.1:$PROXY_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
    --credentials-dir "$WORK/credentials" "${PROXY_ARGS[@]}" >"$WORK/proxy.log" 2>&1 &
  PROXY_PID=$!
  proxy_serves() { [[ $(curl -s -o /dev/null --max-time 5 -w '%{http_code}' -H "Host: $HOST_HEADER" "$PROXY_URL$BODY_PATH" || true) == 200 ]]; }
  wait_ready "$PROXY_PID" "signpost-proxy (GET $BODY_PATH with Host: $HOST_HEADER)" "$WORK/proxy.log" proxy_serves
  READYZ=$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' "http://127.0.0.1:$ADMIN_PORT/readyz" || true)
  log "signpost-proxy answers 200 through the route; admin /readyz: $READYZ"
  if [[ -n $REF_BIN ]]; then
    [[ -x $REF_BIN ]] || die "SIGNPOST_PROXY_REF_BIN $REF_BIN is not an executable"
    REF_PORT=$(free_port)
    REF_ADMIN_PORT=$(free_port)
    REF_URL=http://127.0.0.1:$REF_PORT
    log "starting the reference proxy $REF_BIN on $REF_URL (log $WORK/proxy-ref.log)"
    env SIGNPOST_ALLOW_PRIVATE_NETWORKS=true "$REF_BIN" --config "$WORK/proxy.yaml" \
      --listen "127.0.0.1:$REF_PORT" --admin-listen "127.0.0.1:$REF_ADMIN_PORT" \
      --credentials-dir "$WORK/credentials" "${PROXY_ARGS[@]}" >"$WORK/proxy-ref.log" 2>&1 &
    REF_PID=$!
    ref_serves() { [[ $(curl -s -o /dev/null --max-time 5 -w '%{http_code}' -H "Host: $HOST_HEADER" "$REF_URL$BODY_PATH" || true) == 200 ]]; }
    wait_ready "$REF_PID" "the reference proxy (GET $BODY_PATH with Host: $HOST_HEADER)" "$WORK/proxy-ref.log" ref_serves
  fi
fi

# ---------------------------------------------------------------- the same answers everywhere
TARGETS=(nginx nginx-proxy)
declare -A TARGET_URL=([nginx]=$UPSTREAM_URL [nginx-proxy]=$RP_URL)
declare -A TARGET_PID=([nginx]=$UPSTREAM_PID [nginx-proxy]=$RP_PID)
declare -A TARGET_LABEL=(
  [nginx]="nginx serving the file itself (the ceiling)"
  [nginx-proxy]="nginx reverse proxy adding the destination's Authorization (fixed) and X-Forwarded-*, keep-alive upstream pool"
  [signpost-proxy]="signpost-proxy, route $HOST_HEADER -> destination $DEST_NAME (OAuth2ClientCredentials), token injected"
)
if [[ $WITHOUT_PROXY == 0 ]]; then
  TARGETS+=(signpost-proxy)
  TARGET_URL[signpost-proxy]=$PROXY_URL
  TARGET_PID[signpost-proxy]=$PROXY_PID
  if [[ -n $REF_BIN ]]; then
    TARGETS+=(signpost-proxy-ref)
    TARGET_URL[signpost-proxy-ref]=$REF_URL
    TARGET_PID[signpost-proxy-ref]=$REF_PID
    TARGET_LABEL[signpost-proxy-ref]="the reference proxy $REF_BIN, same configuration"
  fi
fi

for t in "${TARGETS[@]}"; do
  code=$(req GET "${TARGET_URL[$t]}$BODY_PATH" "$WORK/body-$t.out" -H "Host: $HOST_HEADER")
  check_status "$t: GET $BODY_PATH" "$code" 200 "$WORK/body-$t.out"
  cmp -s "$WORK/www/bench.txt" "$WORK/body-$t.out" || die "$t does not return the file byte for byte"
  [[ $t == nginx ]] && continue
  code=$(req GET "${TARGET_URL[$t]}/auth-echo" "$WORK/auth-$t.out" -H "Host: $HOST_HEADER")
  check_status "$t: GET /auth-echo" "$code" 200 "$WORK/auth-$t.out"
done
[[ $(cat "$WORK/auth-nginx-proxy.out") == "Bearer $BEARER" ]] || die "nginx-proxy did not send the destination's token as Authorization"
if [[ $WITHOUT_PROXY == 0 ]]; then
  python3 - "$WORK/auth-signpost-proxy.out" "$WORK/find.json" <<'PYEOF' || die "signpost-proxy did not inject the destination's token"
import json, sys
sent = open(sys.argv[1], encoding="utf-8").read().strip()
token = json.load(open(sys.argv[2], encoding="utf-8"))["authTokens"][0]["value"]
if not sent.startswith("Bearer ") or len(sent) <= len("Bearer "):
    sys.exit(f"the upstream received Authorization {sent[:30]!r}…, not a Bearer token")
print("  the upstream received the token of the find" if sent == "Bearer " + token
      else "  the upstream received a Bearer token (another one than the script's find)", file=sys.stderr)
PYEOF
fi
log "all targets return the identical ${BODY_SIZE}-byte file; the proxies inject their Authorization"

# ---------------------------------------------------------------- wrk rounds
# pin_tree CPUS PID...: every thread of each PID and of its child processes (nginx's workers) to CPUS.
pin_tree() {
  local cpus=$1 pid child
  shift
  for pid in "$@"; do
    [[ -n $pid ]] || continue
    taskset -a -p -c "$cpus" "$pid" >/dev/null
    for child in $(pgrep -P "$pid" || true); do taskset -a -p -c "$cpus" "$child" >/dev/null; done
  done
}
WRK_PIN=()
if [[ -n $PIN ]]; then
  log "pinning: wrk, Signpost and the OAuth server to CPUs $PIN_LOAD; the upstream nginx, nginx-proxy and the proxies to CPUs $PIN_SERVE"
  pin_tree "$PIN_LOAD" "$SERVER_PID" "$OAUTH_PID"
  pin_tree "$PIN_SERVE" "$UPSTREAM_PID" "$RP_PID" "$PROXY_PID" "$REF_PID"
  WRK_PIN=(taskset -c "$PIN_LOAD")
fi

# bench_wrk URL DURATION OUTFILE: wrk's report to OUTFILE, its CPU seconds to OUTFILE.cpu.
bench_wrk() {
  (
    TIMEFORMAT='%3U %3S'
    time "${WRK_PIN[@]}" "$WRK" -t"$THREADS" -c"$CONNECTIONS" -d"$2" --latency -H "Host: $HOST_HEADER" "$1" >"$3" 2>&1
  ) 2>"$3.cpu"
}

# measure_target TARGET ROUND: one wrk run; its report in WORK/wrk-TARGET-ROUND.txt and in
# WORK/cpu-TARGET-ROUND.json the cores used meanwhile by the target ("server": nginx's master and
# workers, or signpost-proxy), the upstream nginx behind a proxy ("upstream"), Signpost behind
# signpost-proxy ("signpost"), wrk and everything else ("other").
measure_target() {
  local t=$1 r=$2 url=${TARGET_URL[$1]}$BODY_PATH out=$WORK/wrk-$1-$2.txt role pid
  local -A watched=([server]=${TARGET_PID[$1]})
  [[ $t != nginx ]] && watched[upstream]=$UPSTREAM_PID
  [[ $t == signpost-proxy* ]] && watched[signpost]=$SERVER_PID
  log "round $r: $t: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency -H 'Host: $HOST_HEADER' $url"
  for role in "${!watched[@]}"; do cpu_snapshot "$WORK/cpu-$t-$r-$role-before.json" "${watched[$role]}"; done
  run_tracked WRK_PID "$out" "wrk against $t" bench_wrk "$url" "$DURATION" "$out"
  for role in "${!watched[@]}"; do cpu_snapshot "$WORK/cpu-$t-$r-$role-after.json" "${watched[$role]}"; done
  grep -E '^(Requests/sec|\s+(50|99)%)' "$out" >&2 || true
  python3 - "$out.cpu" "$WORK/cpu-$t-$r.json" "$WORK/cpu-$t-$r" "${!watched[@]}" <<'PYEOF'
import json, sys
wrk_file, out, prefix, roles = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
snaps = {role: (json.load(open(f"{prefix}-{role}-before.json")), json.load(open(f"{prefix}-{role}-after.json")))
         for role in roles}
a, b = snaps["server"]
hz, secs = a["hz"], max(b["mono"] - a["mono"], 1e-3)
wrk_line = open(wrk_file).read().split()
wrk = sum(float(x) for x in wrk_line[-2:]) / secs if len(wrk_line) >= 2 else 0.0
busy = ((b["total"] - a["total"]) - (b["idle"] - a["idle"])) / hz / secs
cores = {role: (after["server"] - before["server"]) / hz / secs for role, (before, after) in snaps.items()}
result = {role: round(c, 2) for role, c in sorted(cores.items())}
result["wrk"] = round(wrk, 2)
result["other"] = round(max(busy - sum(cores.values()) - wrk, 0.0), 2)
json.dump(result, open(out, "w"))
PYEOF
}

sample_cpu_busy
if [[ $WARMUP != 0 && $WARMUP != 0s ]]; then
  for t in "${TARGETS[@]}"; do
    log "warm-up $WARMUP: $t"
    run_tracked WRK_PID "$WORK/wrk-$t-warmup.txt" "wrk warm-up of $t" \
      bench_wrk "${TARGET_URL[$t]}$BODY_PATH" "$WARMUP" "$WORK/wrk-$t-warmup.txt"
  done
fi
n=${#TARGETS[@]}
for ((r = 1; r <= ROUNDS; r++)); do
  for ((i = 0; i < n; i++)); do
    measure_target "${TARGETS[$(((i + r - 1) % n))]}" "$r"
  done
done

# ---------------------------------------------------------------- memory and streaming
proc_kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || true; }
if [[ $WITHOUT_PROXY == 0 ]]; then
  printf '{"VmRSS": %s, "VmHWM": %s}\n' "$(proc_kb "$PROXY_PID" VmRSS)" "$(proc_kb "$PROXY_PID" VmHWM)" >"$WORK/rss-load.json"
  log "signpost-proxy after the load: $(cat "$WORK/rss-load.json") (kB)"
fi
if ((STREAM_BYTES > 0)); then
  for t in "${TARGETS[@]}"; do
    [[ $t == nginx-proxy || $t == signpost-proxy-ref ]] && continue
    log "streaming: $STREAM_BYTES bytes from $t"
    python3 "$PROXY_BENCH_DIR/stream.py" "${TARGET_URL[$t]}$STREAM_PATH" "$HOST_HEADER" "${TARGET_PID[$t]}" \
      "$STREAM_BYTES" "$STREAM_SHA256" >"$WORK/stream-$t.json" || die "the streaming check through $t failed to run"
    cat "$WORK/stream-$t.json" >&2
  done
fi
if [[ $WITHOUT_PROXY == 0 ]]; then
  kill -0 "$PROXY_PID" 2>/dev/null || die "signpost-proxy died during the run (see $WORK/proxy.log)"
fi

# ---------------------------------------------------------------- figures
if [[ $WITHOUT_PROXY == 1 ]]; then new_result_file proxy-setup-check; else new_result_file proxy; fi
RESULT_BASE=${RESULT_FILE%.json}
git_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)
[[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null || true) ]] && git_rev=$git_rev-dirty
target_args=()
for t in "${TARGETS[@]}"; do target_args+=("$t" "${TARGET_URL[$t]}" "${TARGET_LABEL[$t]}"); done
python3 - "$WORK/meta.json" \
  "date=$STAMP" "rounds=$ROUNDS" "path=$BODY_PATH" "host_header=$HOST_HEADER" "body_bytes=$BODY_SIZE" \
  "stream_bytes=$STREAM_BYTES" "wrk=$("$WRK" -v 2>&1 | head -n 1 | sed 's/ Copyright.*//' || true)" \
  "threads=$THREADS" "connections=$CONNECTIONS" "duration=$DURATION" "warmup=$WARMUP" "cores=$CORES" \
  "cpu_busy=$CPU_BUSY" "git=$git_rev" "nginx=$NGINX_VERSION" "nginx_workers=$NGINX_WORKERS" \
  "oauth=$OAUTH_VERSION" "without_proxy=$WITHOUT_PROXY" "pin_load=$PIN_LOAD" "pin_serve=$PIN_SERVE" \
  -- "${target_args[@]}" <<'PYEOF'
import json, sys
out, args = sys.argv[1], sys.argv[2:]
sep = args.index("--")
v = dict(a.split("=", 1) for a in args[:sep])
triples = args[sep + 1:]
targets = triples[0::3]
meta = {
    "date": v["date"],
    "targets": targets,
    "rounds": int(v["rounds"]),
    "urls": dict(zip(targets, triples[1::3])),
    "labels": dict(zip(targets, triples[2::3])),
    "path": v["path"],
    "host_header": v["host_header"],
    "body_bytes": int(v["body_bytes"]),
    "stream_bytes": int(v["stream_bytes"]),
    "load": {"tool": v["wrk"], "threads": int(v["threads"]), "connections": int(v["connections"]),
             "duration": v["duration"], "warmup": v["warmup"]},
    "machine": {"cores": int(v["cores"]),
                "shared": "wrk and every server run on the same cores" if not v["pin_load"] else
                f"wrk, Signpost and the OAuth server on CPUs {v['pin_load']}; the upstream nginx, nginx-proxy and the proxies on CPUs {v['pin_serve']}",
                "pinned": ({"load": v["pin_load"], "serve": v["pin_serve"]} if v["pin_load"] else None),
                "cpu_busy_percent_before": float(v["cpu_busy"])},
    "versions": {"git": v["git"], "nginx": v["nginx"], "nginx_worker_processes": int(v["nginx_workers"]),
                 "oauth2_mock_server": v["oauth"]},
    "setup_check_without_proxy": v["without_proxy"] == "1",
}
with open(out, "w", encoding="utf-8") as f:
    json.dump(meta, f, indent=2)
PYEOF
valid=0
python3 "$PROXY_BENCH_DIR/report.py" "$WORK" "$RESULT_BASE" "$WORK/meta.json" || valid=$?
check_valid "$valid" "$RESULT_BASE.json"
