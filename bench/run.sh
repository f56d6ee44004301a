#!/usr/bin/env bash
# bench/run.sh: throughput, latency, memory and durability of formvault,
# with nginx serving a static copy of a get-by-ID response as the ceiling.
#
#   ./bench/run.sh [path/to/formvault]          (`make bench` runs this)
#
# Everything listens on 127.0.0.1 only, lives in a temporary directory and is
# stopped on exit (traps). wrk, nginx and formvault share this machine's
# cores: compare ratios and server CPU per request more than absolute rates.
#
# Settings (environment):
#   BENCH_DURATION=10      seconds per measured wrk run
#   BENCH_THREADS=2        wrk threads
#   BENCH_CONNECTIONS=64   wrk connections (keep-alive)
#   BENCH_RECORDS=20000    records seeded before the read benchmarks
#   BENCH_ROUNDS=2         alternating nginx / get-by-ID rounds
#   BENCH_WORKLOADS=get_by_id,report,add_batch,add_one   the measured subset
#                          (get_by_id includes the nginx ceiling)
#   BENCH_PROFILE=         workloads to profile with perf after measuring,
#                          comma-separated (get_by_id,report,add_one,
#                          add_batch) or "all"; reports go to bench/out/
#   BENCH_PERF_CALLGRAPH=dwarf   perf call-graph mode (dwarf, fp or none)
#   BENCH_KEEP=0           1 keeps the temporary directory for inspection
#   BENCH_LOG_LEVEL=warn   server log level (info logs one line per request)
# Other FORMVAULT_* settings (e.g. FORMVAULT_THREADS) pass through to the
# server; the report prints the effective ones.
#
# Output: a Markdown report on stdout and in bench/out/latest.md; raw wrk
# output and perf reports under bench/out/. Exits 1 if any reply was an error
# (non-200, wrong body, socket error) or an acknowledged add is missing after
# the restart: a benchmark of errors is not a result.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=$(realpath -m "${1:-build/formvault}")
duration=${BENCH_DURATION:-10}
threads=${BENCH_THREADS:-2}
conns=${BENCH_CONNECTIONS:-64}
seeded=${BENCH_RECORDS:-20000}
rounds=${BENCH_ROUNDS:-2}
profile=${BENCH_PROFILE:-}
callgraph=${BENCH_PERF_CALLGRAPH:-dwarf}
keep=${BENCH_KEEP:-0}
workloads=${BENCH_WORKLOADS:-get_by_id,report,add_batch,add_one}
has() { [[ ",$workloads," == *",$1,"* ]]; }
out=$here/out
raw=$out/raw
tenant=bench
app=bench

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

[ -x "$bin" ] || die "no executable at '$bin' (run 'make build' first)"
for tool in wrk nginx curl openssl awk /usr/bin/python3; do
    command -v "$tool" >/dev/null || die "'$tool' is required (scripts/install-deps.sh installs it)"
done
if [ $((seeded % 200)) -ne 0 ] || [ "$seeded" -lt 400 ]; then
    die "BENCH_RECORDS must be a multiple of 200, >= 400"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/formvault-bench.XXXXXX")
ngx=""      # nginx prefix (its own directory: it may run as another user)
srv_pid=""  # formvault serve
ngx_pid=""  # nginx master
bg_pids=()  # samplers, background wrk and perf


cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    stop_pid "$ngx_pid"
    stop_pid "$srv_pid"
    wait 2>/dev/null || true
    if [ "$rc" -ne 0 ] && [ -f "$tmp/serve.log" ]; then
        log "server log (last 20 lines):"
        tail -n 20 "$tmp/serve.log" >&2 || true
    fi
    if [ "$keep" = 1 ]; then
        log "kept $tmp ${ngx:+and $ngx}"
    else
        rm -rf "$tmp" ${ngx:+"$ngx"}
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# json_get FILE WHAT: WHAT is code (top-level code), ids (data[].ID, one a
# line) or count (length of data). python3 is in scripts/install-deps.sh.
json_get() {
    /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
with open(sys.argv[1], encoding="utf-8") as f:
    doc = json.load(f)
if sys.argv[2] == "code":
    print(doc.get("code"))
elif sys.argv[2] == "ids":
    for r in doc.get("data", []):
        print(r["ID"])
else:
    print(len(doc.get("data", [])))
PY
}

# /proc/<pid>/stat utime+stime of the given pids, in clock ticks.
cpu_ticks() {
    local p sum=0 f
    for p in "$@"; do
        f=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        f=${f##*) }
        sum=$((sum + $(awk '{print $12 + $13}' <<<"$f")))
    done
    echo "$sum"
}

# /proc/stat: busy and total ticks of all cores together.

# The RSS sampler reads the current phase name from this file: replace it
# atomically so that it never sees an empty file.
set_phase() {
    echo "$1" >"$tmp/phase.new"
    mv -f "$tmp/phase.new" "$tmp/phase"
}

mkdir -p "$out" "$raw"
rm -f "$raw"/*.wrk "$raw"/*.txt
res=$tmp/results
mkdir -p "$res"
set_phase setup

# ----------------------------------------------------------------- machine
kver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }
machine_cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
machine="$(nproc) cores, ${machine_cpu:-unknown CPU}, Linux $(uname -r)"
versions="libmicrohttpd $(kver libmicrohttpd12), GnuTLS $(kver libgnutls30), SQLite $(kver libsqlite3-0), nginx $(kver nginx-light), wrk $(kver wrk)"
data_fs=$(df -T "$tmp" | awk 'NR==2{print $2 " on " $1}')
clk_tck=$(getconf CLK_TCK)
# Which build was measured: checksum, mtime, and the source tree's commit.
bin_id="sha256 $(sha256sum "$bin" | cut -c1-12), built $(date -u -r "$bin" '+%H:%M UTC')"
if git -C "$here/.." rev-parse --short HEAD >/dev/null 2>&1; then
    bin_id="$bin_id, tree at $(git -C "$here/.." rev-parse --short HEAD)"
    [ -z "$(git -C "$here/.." status --porcelain -- src 2>/dev/null)" ] || bin_id="$bin_id + uncommitted src changes"
fi

# ------------------------------------------------------------------- setup
export FORMVAULT_DATA_DIR=$tmp/data
export FORMVAULT_KEK_FILE=$tmp/kek.key
export FORMVAULT_LOG_LEVEL=${BENCH_LOG_LEVEL:-warn}
unset FORMVAULT_CONFIG || true
log "setting up $FORMVAULT_DATA_DIR ($data_fs)"
"$bin" keys init --kek-file "$FORMVAULT_KEK_FILE" >/dev/null
"$bin" init >/dev/null
"$bin" tenant create "$tenant" >/dev/null
"$bin" app import "$here/app.json" --tenant "$tenant" >/dev/null
token=$("$bin" token create --tenant "$tenant" --scopes all --expires 1d --label bench)
cacert=$FORMVAULT_DATA_DIR/tls/cert.pem
settings=$("$bin" config show | awk -F' = ' '$1 ~ /^(threads|write_threads|max_connections|group_commit_max|log_level)$/ {
    s = s (s ? ", " : "") $1 "=" $2 } END {print s}')

start_server() {
    https_port=$(free_port)
    op_port=$(free_port)
    http_port=$(free_port)
    while [ "$op_port" = "$https_port" ]; do op_port=$(free_port); done
    while [ "$http_port" = "$https_port" ] || [ "$http_port" = "$op_port" ]; do http_port=$(free_port); done
    FORMVAULT_BIND=127.0.0.1 FORMVAULT_OPERATOR_BIND=127.0.0.1 \
        FORMVAULT_HTTPS_PORT=$https_port FORMVAULT_HTTP_PORT=$http_port \
        FORMVAULT_OPERATOR_PORT=$op_port \
        "$bin" serve >>"$tmp/serve.out" 2>>"$tmp/serve.log" &
    srv_pid=$!
    local _
    for _ in $(seq 150); do
        if curl -sf --max-time 2 --cacert "$cacert" "https://127.0.0.1:$op_port/healthz" >/dev/null 2>&1; then
            base=https://127.0.0.1:$https_port
            api=/creator/v2.1/data/$tenant/$app
            return 0
        fi
        kill -0 "$srv_pid" 2>/dev/null || die "formvault serve exited during start-up"
        sleep 0.1
    done
    die "formvault serve not healthy after 15 s"
}

# curl against the API; extra arguments follow.
fv_curl() {
    curl -sS --max-time 30 --cacert "$cacert" -H "Authorization: Zoho-oauthtoken $token" "$@"
}

# IDs of every record of All_Items matching the (URL-encoded) criteria, one a
# line, paging 1,000 at a time with record_cursor.
list_ids() {
    local crit=$1 dest=$2 cursor="" page=0 q="max_records=1000"
    [ -z "$crit" ] || q="criteria=$crit&$q"
    : >"$dest"
    while [ "$page" -lt 10000 ]; do
        page=$((page + 1))
        if [ -n "$cursor" ]; then
            fv_curl -D "$tmp/page.hdr" -o "$tmp/page.json" -H "record_cursor: $cursor" \
                "$base$api/report/All_Items?$q"
        else
            fv_curl -D "$tmp/page.hdr" -o "$tmp/page.json" "$base$api/report/All_Items?$q"
        fi
        local code
        code=$(json_get "$tmp/page.json" code)
        if [ "$code" = 9280 ] || [ "$code" = 9220 ]; then break; fi
        [ "$code" = 3000 ] || die "listing records: $(head -c 300 "$tmp/page.json")"
        json_get "$tmp/page.json" ids >>"$dest"
        cursor=$(awk 'tolower($1) == "record_cursor:" {print $2}' "$tmp/page.hdr" | tr -d '\r')
        [ -n "$cursor" ] || break
    done
}

start_server
log "formvault pid $srv_pid on $base (operator $op_port)"

# -------------------------------------------------------------------- seed
# Seq 1..N is unique (indexed), Code C000001..; Seq ranges of 200 drive the
# report benchmark. Fixed-width values keep every get-by-ID body the same size.
log "seeding $seeded records (200 per request)"
batches=$((seeded / 200))
mkdir -p "$tmp/seed"
curl_args=()
for b in $(seq 0 $((batches - 1))); do
    seed_body "$b" >"$tmp/seed/$b.json"
    [ "$b" -eq 0 ] || curl_args+=(--next)
    curl_args+=(-sS --max-time 60 --cacert "$cacert" -H "Authorization: Zoho-oauthtoken $token"
        -H "Content-Type: application/json" --data-binary "@$tmp/seed/$b.json" -w '\n'
        "$base$api/form/Item")
done
seed_start=$(date +%s.%N)
curl "${curl_args[@]}" >"$tmp/seed.out"
seed_secs=$(awk -v a="$seed_start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}')
good=$(grep -c '^{"code":3000,' "$tmp/seed.out" || true)
[ "$good" -eq "$batches" ] || die "seeding: $good of $batches batches fully added; first reply: $(grep -v '^{"code":3000,' "$tmp/seed.out" | head -c 300)"

list_ids "" "$tmp/ids.txt"
n_ids=$(wc -l <"$tmp/ids.txt")
[ "$n_ids" -eq "$seeded" ] || die "seeded $seeded records but the report lists $n_ids"
log "seeded in ${seed_secs}s ($(awk -v n="$seeded" -v s="$seed_secs" 'BEGIN{printf "%.0f", n / s}') records/s through 200-record adds)"

# A real get-by-ID response: its size is what nginx serves.
sample_id=$(sed -n "$((seeded / 2))p" "$tmp/ids.txt")
fv_curl -o "$tmp/item.json" "$base$api/report/All_Items/$sample_id"
head -c 13 "$tmp/item.json" | grep -q '^{"code":3000,' || die "get by ID: $(head -c 300 "$tmp/item.json")"
item_bytes=$(wc -c <"$tmp/item.json")
report_bytes=$(fv_curl "$base$api/report/All_Items?criteria=Seq%3E%3D101%26%26Seq%3C301" | tee "$tmp/report.json" | wc -c)
[ "$(json_get "$tmp/report.json" count)" -eq 200 ] || die "report: $(head -c 300 "$tmp/report.json")"

# ------------------------------------------------------------------- nginx
ngx=$(mktemp -d "${TMPDIR:-/tmp}/formvault-bench-nginx.XXXXXX")
ngx_port=$(free_port)
mkdir -p "$ngx/www"
cp "$tmp/item.json" "$ngx/www/item.json"
cp "$cacert" "$ngx/cert.pem"
cp "$FORMVAULT_DATA_DIR/tls/key.pem" "$ngx/key.pem"
sed -e "s|@DIR@|$ngx|g" -e "s|@PORT@|$ngx_port|g" -e "s|@WORKERS@|$(nproc)|g" \
    "$here/nginx.conf.in" >"$ngx/nginx.conf"
ngx_cmd=(nginx -p "$ngx" -c "$ngx/nginx.conf" -g 'daemon off;')
if [ "$(id -u)" -eq 0 ]; then
    # Unprivileged even when the bench runs as root.
    chown -R 65534:65534 "$ngx"
    chmod 0600 "$ngx/key.pem"
    ngx_cmd=(setpriv --reuid=65534 --regid=65534 --clear-groups "${ngx_cmd[@]}")
fi
"${ngx_cmd[@]}" >"$ngx/stdout.log" 2>&1 &
ngx_pid=$!
for _ in $(seq 100); do
    curl -sf --max-time 2 --cacert "$cacert" -o /dev/null "https://127.0.0.1:$ngx_port/r/1" && break
    kill -0 "$ngx_pid" 2>/dev/null || die "nginx exited: $(cat "$ngx/stdout.log" "$ngx/error.log" 2>/dev/null | head -5)"
    sleep 0.1
done
ngx_workers() { cat /proc/"$ngx_pid"/task/*/children 2>/dev/null || true; }
cmp -s "$tmp/item.json" <(curl -sS --cacert "$cacert" "https://127.0.0.1:$ngx_port/r/1") ||
    die "nginx does not serve the sample response"

tls_params() { # port
    openssl s_client -connect "127.0.0.1:$1" -CAfile "$cacert" -brief </dev/null 2>&1 |
        awk -F': ' '/^Protocol version/{p=$2} /^Ciphersuite/{c=$2} /^(Server|Peer) Temp Key/{k=$2}
                    END{print p ", " c ", " k}'
}
tls_fv=$(tls_params "$https_port")
tls_ngx=$(tls_params "$ngx_port")
log "TLS formvault: $tls_fv; nginx: $tls_ngx"

# -------------------------------------------------------------- RSS sampler
rss_sampler() { # pid file
    local p=$1 f=$2 ph
    while kill -0 "$p" 2>/dev/null; do
        ph=$(cat "$tmp/phase" 2>/dev/null) || ph=""
        [ -n "$ph" ] || ph=unknown
        awk -v ph="$ph" '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} /^RssAnon:/{a=$2} /^RssFile:/{f=$2}
                         END{if (r) print ph, r, h, a, f}' \
            "/proc/$p/status" >>"$f" 2>/dev/null || break
        sleep 0.2
    done
}
rss_sampler "$srv_pid" "$tmp/rss.txt" &
bg_pids+=($!)

# --------------------------------------------------------------------- wrk
# run_wrk NAME SCRIPT URL PATH_PREFIX SERVER_PIDS [VAR=value ...]
run_wrk() {
    local name=$1 script=$2 url=$3 prefix=$4 pids=$5
    shift 5
    set_phase "$name"
    local t0 t1 m0 m1 TIMEFORMAT='%U %S'
    # shellcheck disable=SC2086  # pids is a list
    t0=$(cpu_ticks $pids)
    m0=$(machine_ticks)
    { time env BENCH_DIR="$here" BENCH_TOKEN="$token" BENCH_PATH_PREFIX="$prefix" \
        BENCH_RESULT="$res/$name.txt" BENCH_IDS="$tmp/ids.txt" BENCH_SEEDED="$seeded" "$@" \
        timeout $((duration + 60)) wrk -t"$threads" -c"$conns" -d"${duration}s" --timeout 10s \
        --latency -s "$here/$script" "$url" >"$raw/$name.wrk" 2>&1 ||
        die "wrk $name failed: $(tail -n 5 "$raw/$name.wrk")"; } 2>"$tmp/time.txt"
    # shellcheck disable=SC2086
    t1=$(cpu_ticks $pids)
    m1=$(machine_ticks)
    # CPU seconds: the server, wrk, and the whole machine (busy of all cores);
    # other = machine - server - wrk, i.e. interference from other processes.
    awk -v d=$((t1 - t0)) -v h="$clk_tck" -v m0="$m0" -v m1="$m1" -v w="$(cat "$tmp/time.txt")" 'BEGIN{
        split(m0, a, " "); split(m1, b, " "); split(w, c, " ")
        srv = d / h; wrk = c[1] + c[2]; busy = (b[1] - a[1]) / h; wall = (b[2] - a[2]) / h
        printf "server_cpu_s=%.2f\nwrk_cpu_s=%.2f\nmachine_busy_s=%.2f\nmachine_total_s=%.2f\n", srv, wrk, busy, wall
        o = busy - srv - wrk; if (o < 0) o = 0
        printf "other_cpu_s=%.2f\n", o }' >>"$res/$name.txt"
    cp "$res/$name.txt" "$raw/$name.txt"
    set_phase idle
    local okn bad
    okn=$(val "$name" ok)
    bad=$(($(val "$name" non200) + $(val "$name" badbody) + $(val "$name" sock_errors)))
    log "$name: $(val "$name" ok_rps) req/s ok, p50 $(val "$name" p50_ms) ms, p99 $(val "$name" p99_ms) ms, $okn ok, $bad errors, CPU s server $(val "$name" server_cpu_s) wrk $(val "$name" wrk_cpu_s) other $(val "$name" other_cpu_s)"
    if [ "$bad" -ne 0 ]; then log "$name: first error: $(val "$name" first_bad)"; fi
    sleep 1
}
val() { awk -v k="$2" 'index($0, k "=") == 1 {print substr($0, length(k) + 2); exit}' "$res/$1.txt"; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "measuring: wrk -t$threads -c$conns -d${duration}s, keep-alive over TLS"
if has get_by_id; then
    for r in $(seq "$rounds"); do
        run_wrk "nginx_$r" get_by_id.lua "https://127.0.0.1:$ngx_port" /r/ "$ngx_pid $(ngx_workers)"
        run_wrk "get_by_id_$r" get_by_id.lua "$base" "$api/report/All_Items/" "$srv_pid"
    done
fi
if has report; then run_wrk report report.lua "$base" "$api/report/All_Items" "$srv_pid"; fi
if has add_batch; then run_wrk add_batch add_batch.lua "$base" "$api/form/Item" "$srv_pid"; fi

# Durable commits during add_one: fsync/fdatasync calls of the server.
syncs=""
sync_pid=""
if has add_one && command -v perf >/dev/null; then
    perf stat -x, -e 'syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync' -o "$tmp/sync.csv" \
        -p "$srv_pid" -- sleep "$duration" >/dev/null 2>&1 &
    sync_pid=$!
    bg_pids+=("$sync_pid")
fi
if has add_one; then
    run_wrk add_one add_one.lua "$base" "$api/form/Item" "$srv_pid" BENCH_ACKED="$tmp/acked.txt"
    [ -z "$sync_pid" ] || wait "$sync_pid" 2>/dev/null || true
    if [ -s "$tmp/sync.csv" ]; then
        syncs=$(awk -F, '$3 ~ /sys_enter_f(data)?sync/ && $1 ~ /^[0-9]+$/ {s += $1} END{print s + 0}' "$tmp/sync.csv")
    fi
fi
set_phase finished
sleep 1
rss_final=$(awk '/^VmRSS:/{print $2}' "/proc/$srv_pid/status")
hwm_final=$(awk '/^VmHWM:/{print $2}' "/proc/$srv_pid/status")

# -------------------------------------------------------------- durability
# Every acknowledged add must survive a SIGKILL of the server and a restart.
n_missing=0
if has add_one; then
    log "durability: SIGKILL the server, restart, look for every acknowledged add"
    kill -KILL "$srv_pid"
    wait "$srv_pid" 2>/dev/null || true
    srv_pid=""
    start_server
    list_ids 'Code.startsWith(%22A%22)' "$tmp/present.txt"
    sort -u "$tmp/acked.txt" >"$tmp/acked.sorted"
    sort -u "$tmp/present.txt" >"$tmp/present.sorted"
    n_acked=$(wc -l <"$tmp/acked.sorted")
    n_present=$(wc -l <"$tmp/present.sorted")
    n_missing=$(comm -23 "$tmp/acked.sorted" "$tmp/present.sorted" | wc -l)
    n_extra=$(comm -13 "$tmp/acked.sorted" "$tmp/present.sorted" | wc -l)
    log "acknowledged $n_acked, present after restart $n_present, missing $n_missing, unacknowledged extra $n_extra"
fi

# ----------------------------------------------------------------- profile
if [ -n "$profile" ] && command -v perf >/dev/null; then
    [ "$profile" != all ] || profile=get_by_id,report,add_one,add_batch
    IFS=, read -r -a plist <<<"$profile"
    for w in "${plist[@]}"; do
        case $w in
        get_by_id) s=get_by_id.lua p="$api/report/All_Items/" ;;
        report) s=report.lua p="$api/report/All_Items" ;;
        add_one) s=add_one.lua p="$api/form/Item" ;;
        add_batch) s=add_batch.lua p="$api/form/Item" ;;
        *) die "BENCH_PROFILE: unknown workload '$w'" ;;
        esac
        log "profiling $w with perf ($callgraph call graphs, 5 s)"
        env BENCH_DIR="$here" BENCH_TOKEN="$token" BENCH_PATH_PREFIX="$p" \
            BENCH_RESULT="$tmp/prof.txt" BENCH_IDS="$tmp/ids.txt" BENCH_SEEDED="$seeded" \
            timeout 60 wrk -t"$threads" -c"$conns" -d9s --timeout 10s -s "$here/$s" "$base" \
            >/dev/null 2>&1 &
        wpid=$!
        bg_pids+=("$wpid")
        sleep 2
        cg=(-g)
        [ "$callgraph" = fp ] || cg=(--call-graph "$callgraph")
        [ "$callgraph" != none ] || cg=()
        rm -f "$out/perf-$w.data" "$out/perf-$w.data.old"
        perf record -q -e cpu-clock -F 499 "${cg[@]}" -p "$srv_pid" -o "$out/perf-$w.data" \
            -- sleep 5 >/dev/null 2>&1 || log "perf record failed for $w"
        wait "$wpid" || true
        {
            echo "# $w: server CPU by symbol (self), cpu-clock samples"
            perf report -i "$out/perf-$w.data" --stdio --no-children --sort dso,symbol \
                --percent-limit 0.5 -g none 2>/dev/null | grep -v -e '^$' -e '^# [(.T]' || true
            echo
            echo "# $w: by shared object"
            perf report -i "$out/perf-$w.data" --stdio --no-children --sort dso -g none \
                2>/dev/null | grep -v -e '^#' -e '^$' | head -15 || true
            if [ "$callgraph" != none ]; then
                echo
                echo "# $w: inclusive (self + callees), named symbols >= 2%"
                perf report -i "$out/perf-$w.data" --stdio --children --sort symbol \
                    --percent-limit 2 -g none 2>/dev/null |
                    grep -v -e '^#' -e '^$' -e '\] 0x0000' | head -70 || true
                echo
                echo "# $w: hottest call chains (caller > callee, unresolved frames dropped)"
                perf report -i "$out/perf-$w.data" --stdio --no-children --sort symbol \
                    -g folded,0,caller --percent-limit 0 2>/dev/null |
                    grep -E '^[0-9.]+% ' | sed -e 's/0x[0-9a-f]*;//g' -e 's/;/ > /g' |
                    sort -gr | head -40 || true
            fi
        } >"$out/perf-$w.txt"
        log "wrote bench/out/perf-$w.txt"
    done
fi

# ------------------------------------------------------------------ report
mean() { # name prefix, field
    local f sum=0 n=0 v
    for f in "$res/$1"_*.txt; do
        v=$(awk -v k="$2" 'index($0, k "=") == 1 {print substr($0, length(k) + 2); exit}' "$f")
        sum=$(awk -v a="$sum" -v b="$v" 'BEGIN{print a + b}')
        n=$((n + 1))
    done
    awk -v s="$sum" -v n="$n" 'BEGIN{printf "%.0f", s / n}'
}
mean_est() { # name prefix
    local f sum=0 n=0
    for f in "$res/$1"_*.txt; do
        sum=$(awk -v a="$sum" -v b="$(est "$(basename "$f" .txt)")" 'BEGIN{print a + b}')
        n=$((n + 1))
    done
    awk -v s="$sum" -v n="$n" 'BEGIN{printf "%.0f", s / n}'
}
row() { # name label records-per-request
    local n=$1 per=$3 cpu_us rps
    rps=$(val "$n" ok_rps)
    cpu_us=$(awk -v c="$(val "$n" server_cpu_s)" -v k="$(val "$n" ok)" \
        'BEGIN{if (k > 0) printf "%.0f", c * 1e6 / k; else print "-"}')
    printf '| %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n' "$2" "$rps" \
        "$(awk -v r="$rps" -v p="$per" 'BEGIN{printf "%.0f", r * p}')" \
        "$(val "$n" p50_ms)" "$(val "$n" p99_ms)" \
        "$(val "$n" non200) / $(val "$n" badbody) / $(val "$n" sock_errors)" \
        "$(awk -v c="$(val "$n" server_cpu_s)" -v w="$(val "$n" wrk_cpu_s)" -v o="$(val "$n" other_cpu_s)" \
            -v t="$(val "$n" machine_total_s)" -v k="$(nproc)" \
            'BEGIN{d = t / k; printf "%.2f / %.2f / %.2f", c / d, w / d, o / d}')" \
        "$cpu_us" "$(est "$n")"
}
# Requests/s the server and wrk would reach with every core to themselves,
# from the CPU they used per request (a projection for CPU-bound workloads on
# a machine shared with other work; it ignores fsync waits and contention).
est() {
    awk -v c="$(val "$1" server_cpu_s)" -v w="$(val "$1" wrk_cpu_s)" -v k="$(val "$1" ok)" \
        -v n="$(nproc)" 'BEGIN{if (c + w > 0) printf "%.0f", n * k / (c + w); else print "-"}'
}
verdict() { # value op goal -> met / NOT met, by how much
    awk -v v="$1" -v g="$3" -v op="$2" 'BEGIN{
        ok = (op == ">=") ? v >= g : v < g
        d = (v - g) / g * 100
        printf "%s (%+.0f%%)", ok ? "met" : "NOT met", d }'
}

if has get_by_id; then
    getid=$(mean get_by_id ok_rps)
    ngxr=$(mean nginx ok_rps)
    ratio=$(awk -v a="$getid" -v b="$ngxr" 'BEGIN{printf "%.2f", a / b}')
fi
rss_max=$(awk '$1 != "finished" && $2 > m {m = $2} END{print m + 0}' "$tmp/rss.txt")
rss_idle=$(awk '$1 == "setup" {r = $2} END{print r + 0}' "$tmp/rss.txt")
hwm=${hwm_final:-$(awk '{h = $3} END{print h + 0}' "$tmp/rss.txt")}
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k / 1024}'; }
if has add_one; then add1=$(val add_one ok_rps); fi
if has report; then rep=$(val report ok_rps); fi
errors_total=0
for f in "$res"/*.txt; do
    n=$(basename "$f" .txt)
    errors_total=$((errors_total + $(val "$n" non200) + $(val "$n" badbody) + $(val "$n" sock_errors)))
done

{
    echo "## formvault benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- machine: $machine; data dir on $data_fs"
    echo "- packages: $versions"
    echo "- wrk -t$threads -c$conns -d${duration}s --latency, HTTPS keep-alive; wrk, formvault and nginx share the $(nproc) cores"
    echo "- TLS negotiated: formvault $tls_fv; nginx $tls_ngx"
    echo "- data: $seeded seeded records (8 fields); get-by-ID response $item_bytes bytes (nginx serves a copy); report response $report_bytes bytes"
    echo "- formvault $("$bin" --version | awk '{print $2}'), binary $bin_id; settings: $settings; SQLite synchronous=FULL, WAL (src/store/conn.c)"
    echo
    echo "| workload | req/s | records/s | p50 ms | p99 ms | non-200 / bad body / socket errors | CPU cores: server / wrk / other | server CPU µs/req | req/s projected, cores to ourselves |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    if has get_by_id; then
        for r in $(seq "$rounds"); do
            row "nginx_$r" "nginx static $item_bytes B (ceiling), round $r" 1
            row "get_by_id_$r" "get by ID, round $r" 1
        done
    fi
    if has report; then row report "report, 200 records by Seq range" 200; fi
    if has add_batch; then row add_batch "add 200 records per request" 200; fi
    if has add_one; then row add_one "add one record" 1; fi
    echo
    if has get_by_id; then
        getid_est=$(mean_est get_by_id)
        ngx_est=$(mean_est nginx)
        echo "- get by ID / nginx: $ratio (means $getid / $ngxr req/s); projected with the cores to ourselves: $getid_est / $ngx_est = $(awk -v a="$getid_est" -v b="$ngx_est" 'BEGIN{printf "%.2f", a / b}')"
    fi
    echo "- server RSS: max $(mib "$rss_max") MiB under load (VmHWM $(mib "$hwm") MiB), $(mib "$rss_idle") MiB idle after seeding, $(mib "${rss_final:-0}") MiB after the load; RSS = anonymous (heap, stacks) + file-backed (libraries, SQLite mmap of the databases). Max per phase, MiB (RSS = anon + file):"
    awk '$1 != "finished" && $1 != "idle" {
            if (!($1 in r)) order[n++] = $1
            if ($2 > r[$1]) {r[$1] = $2; a[$1] = $4; f[$1] = $5} }
         END {for (i = 0; i < n; i++) { p = order[i]
              printf "%s%s %.1f = %.1f + %.1f%s", (i ? " " : "  "), p, r[p] / 1024, a[p] / 1024,
                     f[p] / 1024, (i < n - 1 ? ";" : "\n") }}' "$tmp/rss.txt"
    if has add_one; then
        echo "- durability: $n_acked adds acknowledged during add_one; after SIGKILL and restart $n_present present, $n_missing missing, $n_extra unacknowledged extra (in flight when wrk stopped)"
    fi
    if [ -n "$syncs" ]; then
        echo "- durable commits during add_one: $syncs fsync/fdatasync calls by the server, $(awk -v a="$(val add_one ok)" -v s="$syncs" 'BEGIN{if (s > 0) printf "%.1f", a / s; else print "-"}') acknowledged adds per sync"
    fi
    echo "- errors over all runs: $errors_total"
    echo "- load average before the runs: $load_before (other = CPU used by processes other than the server and wrk during a run)"
    echo
    echo "| goal | measured | verdict |"
    echo "|---|---:|---|"
    if has get_by_id; then
        echo "| get by ID >= 20,000 req/s | $getid | $(verdict "$getid" ">=" 20000) |"
        echo "| (projected, cores to ourselves) | $getid_est | $(verdict "$getid_est" ">=" 20000) |"
        echo "| get by ID >= 50% of nginx | $(awk -v r="$ratio" 'BEGIN{printf "%.0f%%", r * 100}') | $(verdict "$ratio" ">=" 0.5) |"
    fi
    if has add_one; then
        echo "| add one record >= 5,000 req/s, durable | $(printf '%.0f' "$add1") | $(verdict "$add1" ">=" 5000)$([ "$n_missing" -eq 0 ] || echo ", $n_missing acknowledged adds LOST") |"
        echo "| (projected, cores to ourselves; ignores fsync waits) | $(est add_one) | $(verdict "$(est add_one)" ">=" 5000) |"
    fi
    if has report; then
        echo "| report of 200 records >= 1,500 req/s | $(printf '%.0f' "$rep") | $(verdict "$rep" ">=" 1500) |"
        echo "| (projected, cores to ourselves) | $(est report) | $(verdict "$(est report)" ">=" 1500) |"
    fi
    echo "| RSS < 64 MiB | $(mib "$rss_max") MiB | $(verdict "$rss_max" "<" 65536) |"
} | tee "$out/latest.md"

[ "$n_missing" -eq 0 ] || log "error: $n_missing acknowledged adds are missing after restart"
[ "$errors_total" -eq 0 ] || log "error: $errors_total error responses: these rates are not valid"
[ "$n_missing" -eq 0 ] && [ "$errors_total" -eq 0 ] || exit 1
