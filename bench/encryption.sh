#!/usr/bin/env bash
# bench/encryption.sh: the cost of encryption at rest (issue 3), measured side
# by side in one run with alternating rounds:
#
#   P  plain SQLite unix VFS (benchmark-only build) + bench/app.json
#   E  encrypting VFS (the normal build)            + bench/app.json
#   F  encrypting VFS (the normal build)            + bench/app_enc.json
#      (Price, Contact and Notes have "encrypt": true)
#
# for the workloads add_one, get_by_id and report (200 records) of
# bench/run.sh, with its Lua scripts. Goals: E/P >= 0.85 (encrypted storage
# costs <= 15 % throughput) and F/E >= 0.90 (field encryption of 3 fields
# costs <= 10 %).
#
#   ./bench/encryption.sh [ENCRYPTING_BIN [PLAIN_BIN]]   (`make bench-encryption`)
#
# Without arguments it builds both binaries with the same flags:
# build-bench-enc/ (the normal configuration) and build-bench-plain/
# (-DFV_BENCH_PLAIN_VFS=ON). The plain build must print "BENCHMARK BUILD:
# storage is NOT encrypted", the other must not, and the data files are
# checked for SQLite's clear header (plain) or its absence (encrypted).
#
# The three servers run at once, each with its own temporary data directory,
# KEK file, certificate and token, on 127.0.0.1 only; each wrk run loads one
# of them while the others idle. Traps stop everything on exit. Each round
# runs every workload on all three configurations, in an order rotated per
# round (P E F, E F P, F P E, ...), so slow drift of the shared machine
# lands on all of them. Compare the ratios, not the absolute rates.
#
# Settings (environment):
#   BENCH_DURATION=8       seconds per measured wrk run
#   BENCH_ROUNDS=3         rounds (each: 3 workloads x 3 configurations)
#   BENCH_THREADS=2        wrk threads
#   BENCH_CONNECTIONS=64   wrk connections (keep-alive, TLS)
#   BENCH_RECORDS=10000    records seeded per configuration (multiple of 200)
#   BENCH_WORKLOADS=add_one,get_by_id,report   the measured subset, in order
#   BENCH_CMAKE_FLAGS=     extra cmake arguments for both builds
#   BENCH_PROFILE=         after measuring, profile these workloads (comma-
#                          separated, or "all") on P, E and F with perf, 5 s
#                          each: bench/out/perf-enc-<workload>-<config>.txt
#   BENCH_PERF_CALLGRAPH=dwarf   perf call-graph mode (dwarf, fp or none)
#   BENCH_LOG_LEVEL=warn   server log level
#   BENCH_KEEP=0           1 keeps the temporary directory
# Other FORMVAULT_* settings pass through to all three servers.
#
# Output: Markdown on stdout and in bench/out/encryption.md, raw figures in
# bench/out/raw-encryption/. Exits 1 on any error reply (non-200, wrong body,
# socket error): a benchmark of errors is not a result.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
duration=${BENCH_DURATION:-8}
rounds=${BENCH_ROUNDS:-3}
threads=${BENCH_THREADS:-2}
conns=${BENCH_CONNECTIONS:-64}
seeded=${BENCH_RECORDS:-10000}
keep=${BENCH_KEEP:-0}
workloads=${BENCH_WORKLOADS:-add_one,get_by_id,report}
out=$here/out
raw=$out/raw-encryption
tenant=bench
app=bench
configs=(P E F)

log() { printf '[bench-enc %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

for tool in wrk curl awk cmake /usr/bin/python3; do
    command -v "$tool" >/dev/null || die "'$tool' is required (scripts/install-deps.sh installs it)"
done
if [ $((seeded % 200)) -ne 0 ] || [ "$seeded" -lt 400 ]; then
    die "BENCH_RECORDS must be a multiple of 200, >= 400"
fi
IFS=, read -r -a wl_list <<<"$workloads"
for w in "${wl_list[@]}"; do
    case $w in add_one | get_by_id | report) ;; *) die "BENCH_WORKLOADS: unknown workload '$w'" ;; esac
done

# ------------------------------------------------------------------ build
build_one() { # dir plain(ON/OFF)
    mkdir -p "$root/$1"
    # shellcheck disable=SC2086  # BENCH_CMAKE_FLAGS is a list
    cmake -S "$root" -B "$root/$1" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFV_BENCH_PLAIN_VFS="$2" \
        ${BENCH_CMAKE_FLAGS:-} >"$root/$1/bench-cmake.log" 2>&1 ||
        die "cmake $1 failed: $(tail -n 5 "$root/$1/bench-cmake.log")"
    cmake --build "$root/$1" -j"$(nproc)" --target formvault >"$root/$1/bench-build.log" 2>&1 ||
        die "build $1 failed (log: $1/bench-build.log): $(grep -m 3 -E 'error|Error' "$root/$1/bench-build.log")"
}
if [ $# -ge 1 ]; then
    bin_enc=$(realpath -m "$1")
else
    log "building build-bench-enc/ (normal: encrypting VFS)"
    build_one build-bench-enc OFF
    bin_enc=$root/build-bench-enc/formvault
fi
if [ $# -ge 2 ]; then
    bin_plain=$(realpath -m "$2")
else
    log "building build-bench-plain/ (-DFV_BENCH_PLAIN_VFS=ON: storage NOT encrypted)"
    build_one build-bench-plain ON
    bin_plain=$root/build-bench-plain/formvault
fi
[ -x "$bin_enc" ] || die "no executable at '$bin_enc'"
[ -x "$bin_plain" ] || die "no executable at '$bin_plain'"
grep -aq 'BENCHMARK BUILD: storage is NOT encrypted' "$bin_plain" ||
    die "'$bin_plain' is not a FV_BENCH_PLAIN_VFS build"
! grep -aq 'BENCHMARK BUILD' "$bin_enc" ||
    die "'$bin_enc' is a FV_BENCH_PLAIN_VFS build: it does not encrypt"

declare -A cbin capp cname
cbin=([P]=$bin_plain [E]=$bin_enc [F]=$bin_enc)
capp=([P]=$here/app.json [E]=$here/app.json [F]=$here/app_enc.json)
cname=([P]="plain VFS, plain app" [E]="encrypting VFS, plain app" [F]="encrypting VFS, 3 encrypted fields")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/formvault-bench-enc.XXXXXX")
declare -A srv_pid base token cacert
bg_pids=()


cleanup() {
    local rc=$? p c
    trap - EXIT INT TERM
    for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for c in "${configs[@]}"; do stop_pid "${srv_pid[$c]:-}"; done
    wait 2>/dev/null || true
    if [ "$rc" -ne 0 ]; then
        for c in "${configs[@]}"; do
            if [ -s "$tmp/$c/serve.log" ]; then
                log "server $c log (last 10 lines):"
                tail -n 10 "$tmp/$c/serve.log" >&2 || true
            fi
        done
    fi
    if [ "$keep" = 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# N distinct free loopback ports, one a line.
free_ports() {
    /usr/bin/python3 -c '
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print("\n".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

json_get() { # FILE code|ids|count
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

cpu_ticks() { # pid: utime + stime in clock ticks
    local f
    f=$(cat "/proc/$1/stat" 2>/dev/null) || {
        echo 0
        return
    }
    f=${f##*) }
    awk '{print $12 + $13}' <<<"$f"
}
clk_tck=$(getconf CLK_TCK)

# Run a formvault command for configuration C with its environment.
fv() { # C args...
    local c=$1
    shift
    env FORMVAULT_DATA_DIR="$tmp/$c/data" FORMVAULT_KEK_FILE="$tmp/$c/kek.key" \
        FORMVAULT_LOG_LEVEL="${BENCH_LOG_LEVEL:-warn}" "${cbin[$c]}" "$@"
}
fv_curl() { # C curl-args...
    local c=$1
    shift
    curl -sS --max-time 60 --cacert "${cacert[$c]}" -H "Authorization: Zoho-oauthtoken ${token[$c]}" "$@"
}

unset FORMVAULT_CONFIG || true
mkdir -p "$out" "$raw"
rm -f "$raw"/*.wrk "$raw"/*.txt
res=$tmp/results
mkdir -p "$res"

# ------------------------------------------------------------------ setup
setup_config() { # C
    local c=$1 ports
    mkdir -p "$tmp/$c"
    fv "$c" keys init --kek-file "$tmp/$c/kek.key" >/dev/null 2>>"$tmp/$c/cli.log"
    fv "$c" init >/dev/null 2>>"$tmp/$c/cli.log"
    fv "$c" tenant create "$tenant" >/dev/null 2>>"$tmp/$c/cli.log"
    fv "$c" app import "${capp[$c]}" --tenant "$tenant" >/dev/null 2>>"$tmp/$c/cli.log" ||
        die "config $c: app import failed: $(tail -n 3 "$tmp/$c/cli.log")"
    token[$c]=$(fv "$c" token create --tenant "$tenant" --scopes all --expires 1d --label bench 2>>"$tmp/$c/cli.log")
    cacert[$c]=$tmp/$c/data/tls/cert.pem
    mapfile -t ports < <(free_ports 3)
    # Started directly (not through fv, a function: $! would be a subshell).
    FORMVAULT_BIND=127.0.0.1 FORMVAULT_OPERATOR_BIND=127.0.0.1 \
        FORMVAULT_HTTPS_PORT=${ports[0]} FORMVAULT_HTTP_PORT=${ports[1]} \
        FORMVAULT_OPERATOR_PORT=${ports[2]} FORMVAULT_DATA_DIR="$tmp/$c/data" \
        FORMVAULT_KEK_FILE="$tmp/$c/kek.key" FORMVAULT_LOG_LEVEL="${BENCH_LOG_LEVEL:-warn}" \
        "${cbin[$c]}" serve >>"$tmp/$c/serve.out" 2>>"$tmp/$c/serve.log" &
    srv_pid[$c]=$!
    local _
    for _ in $(seq 150); do
        if curl -sf --max-time 2 --cacert "${cacert[$c]}" "https://127.0.0.1:${ports[2]}/healthz" >/dev/null 2>&1; then
            base[$c]=https://127.0.0.1:${ports[0]}
            return 0
        fi
        kill -0 "${srv_pid[$c]}" 2>/dev/null || die "config $c: formvault serve exited during start-up"
        sleep 0.1
    done
    die "config $c: formvault serve not healthy after 15 s"
}

api=/creator/v2.1/data/$tenant/$app

list_ids() { # C dest
    local c=$1 dest=$2 cursor="" page=0 q="max_records=1000" code
    : >"$dest"
    while [ "$page" -lt 10000 ]; do
        page=$((page + 1))
        if [ -n "$cursor" ]; then
            fv_curl "$c" -D "$tmp/page.hdr" -o "$tmp/page.json" -H "record_cursor: $cursor" \
                "${base[$c]}$api/report/All_Items?$q"
        else
            fv_curl "$c" -D "$tmp/page.hdr" -o "$tmp/page.json" "${base[$c]}$api/report/All_Items?$q"
        fi
        code=$(json_get "$tmp/page.json" code)
        if [ "$code" = 9280 ] || [ "$code" = 9220 ]; then break; fi
        [ "$code" = 3000 ] || die "config $c: listing records: $(head -c 300 "$tmp/page.json")"
        json_get "$tmp/page.json" ids >>"$dest"
        cursor=$(awk 'tolower($1) == "record_cursor:" {print $2}' "$tmp/page.hdr" | tr -d '\r')
        [ -n "$cursor" ] || break
    done
}

# The seed bodies of bench/run.sh: Seq 1..N unique, fixed-width values.
batches=$((seeded / 200))
mkdir -p "$tmp/seed"
for b in $(seq 0 $((batches - 1))); do
    seed_body "$b" >"$tmp/seed/$b.json"
done

declare -A seed_secs item_bytes report_bytes seed_mib
seed_config() { # C
    local c=$1 args=() b t0 good n mid
    for b in $(seq 0 $((batches - 1))); do
        [ "$b" -eq 0 ] || args+=(--next)
        args+=(-sS --max-time 120 --cacert "${cacert[$c]}" -H "Authorization: Zoho-oauthtoken ${token[$c]}"
            -H "Content-Type: application/json" --data-binary "@$tmp/seed/$b.json" -w '\n'
            "${base[$c]}$api/form/Item")
    done
    t0=$(date +%s.%N)
    curl "${args[@]}" >"$tmp/$c/seed.out"
    seed_secs[$c]=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}')
    good=$(grep -c '^{"code":3000,' "$tmp/$c/seed.out" || true)
    [ "$good" -eq "$batches" ] ||
        die "config $c: seeding: $good of $batches batches added; first other reply: $(grep -v '^{"code":3000,' "$tmp/$c/seed.out" | head -c 300)"
    list_ids "$c" "$tmp/$c/ids.txt"
    n=$(wc -l <"$tmp/$c/ids.txt")
    [ "$n" -eq "$seeded" ] || die "config $c: seeded $seeded records but the report lists $n"
    # A get by ID and a report must return the (decrypted) seeded values.
    mid=$(sed -n "$((seeded / 2))p" "$tmp/$c/ids.txt")
    fv_curl "$c" -o "$tmp/$c/item.json" "${base[$c]}$api/report/All_Items/$mid"
    /usr/bin/python3 - "$tmp/$c/item.json" <<'PY' || die "config $c: get by ID returned unexpected values: $(head -c 300 "$tmp/$c/item.json")"
import json, re, sys
d = json.load(open(sys.argv[1]))["data"]
i = int(d["Seq"])
assert d["Code"] == "C%06d" % i and d["Contact"] == "user%06d@example.com" % i, d
assert d["Notes"] == "seeded item %06d\nsecond line" % i, d
assert d["Price"] == "%d.%02d" % (10 + i % 90, i % 100), d
PY
    item_bytes[$c]=$(wc -c <"$tmp/$c/item.json")
    fv_curl "$c" -o "$tmp/$c/report.json" "${base[$c]}$api/report/All_Items?criteria=Seq%3E%3D101%26%26Seq%3C301"
    [ "$(json_get "$tmp/$c/report.json" count)" -eq 200 ] || die "config $c: report: $(head -c 300 "$tmp/$c/report.json")"
    report_bytes[$c]=$(wc -c <"$tmp/$c/report.json")
    seed_mib[$c]=$(db_mib "$c")
    log "config $c (${cname[$c]}): seeded $seeded records in ${seed_secs[$c]}s (${seed_mib[$c]} MiB); get by ID ${item_bytes[$c]} B, report ${report_bytes[$c]} B"
}

# Size of the tenant databases (main file + WAL) in MiB.
db_mib() { # C
    find "$tmp/$1/data/tenants" -type f \( -name '*.db' -o -name '*.db-wal' \) -printf '%s\n' |
        awk '{s += $1} END{printf "%.1f", s / 1048576}'
}

# Is the tenant database encrypted on disk? (SQLite's clear header or not.)
on_disk() { # C
    local f
    f=$(find "$tmp/$1/data/tenants" -type f -name '*.db' | head -n 1)
    [ -n "$f" ] || {
        echo "no tenant database found"
        return
    }
    if cmp -s -n 16 <(printf 'SQLite format 3\0') "$f"; then echo "clear"; else echo "encrypted"; fi
}

for c in "${configs[@]}"; do setup_config "$c"; done
for c in "${configs[@]}"; do seed_config "$c"; done
[ "$(on_disk P)" = clear ] || die "config P: tenant database is not a clear SQLite file ($(on_disk P))"
[ "$(on_disk E)" = encrypted ] || die "config E: tenant database is not encrypted ($(on_disk E))"
[ "$(on_disk F)" = encrypted ] || die "config F: tenant database is not encrypted ($(on_disk F))"
grep -q 'BENCHMARK BUILD: storage is NOT encrypted' "$tmp/P/serve.log" ||
    die "config P: the server did not announce the benchmark build"
settings=$(fv E config show 2>/dev/null | awk -F' = ' '$1 ~ /^(threads|write_threads|max_connections|group_commit_max|log_level)$/ {
    s = s (s ? ", " : "") $1 "=" $2 } END {print s}')

# -------------------------------------------------------------------- wrk
val() { awk -v k="$2" 'index($0, k "=") == 1 {print substr($0, length(k) + 2); exit}' "$res/$1.txt"; }

run_wrk() { # C workload round
    local c=$1 w=$2 r=$3 name="$2_$1_$3" script prefix t0 t1 m0 m1 bad TIMEFORMAT='%U %S'
    case $w in
    get_by_id) script=get_by_id.lua prefix="$api/report/All_Items/" ;;
    report) script=report.lua prefix="$api/report/All_Items" ;;
    add_one) script=add_one_rounds.lua prefix="$api/form/Item" ;;
    esac
    t0=$(cpu_ticks "${srv_pid[$c]}")
    m0=$(machine_ticks)
    { time env BENCH_DIR="$here" BENCH_TOKEN="${token[$c]}" BENCH_PATH_PREFIX="$prefix" \
        BENCH_RESULT="$res/$name.txt" BENCH_IDS="$tmp/$c/ids.txt" BENCH_SEEDED="$seeded" \
        BENCH_TID_OFFSET=$((r * 10)) \
        timeout $((duration + 60)) wrk -t"$threads" -c"$conns" -d"${duration}s" --timeout 10s \
        --latency -s "$here/$script" "${base[$c]}" >"$raw/$name.wrk" 2>&1 ||
        die "wrk $name failed: $(tail -n 5 "$raw/$name.wrk")"; } 2>"$tmp/time.txt"
    t1=$(cpu_ticks "${srv_pid[$c]}")
    m1=$(machine_ticks)
    awk -v d=$((t1 - t0)) -v h="$clk_tck" -v m0="$m0" -v m1="$m1" -v w="$(cat "$tmp/time.txt")" 'BEGIN{
        split(m0, a, " "); split(m1, b, " "); split(w, c, " ")
        printf "server_cpu_s=%.2f\nwrk_cpu_s=%.2f\n", d / h, c[1] + c[2]
        printf "machine_busy_s=%.2f\nmachine_total_s=%.2f\n", (b[1] - a[1]) / h, (b[2] - a[2]) / h }' \
        >>"$res/$name.txt"
    cp "$res/$name.txt" "$raw/$name.txt"
    bad=$(($(val "$name" non200) + $(val "$name" badbody) + $(val "$name" sock_errors)))
    log "round $r $w $c: $(val "$name" ok_rps) req/s, p50 $(val "$name" p50_ms) ms, server $(us_per_req "$name") µs/req, cores server/wrk/other $(cores "$name"), $bad errors"
    [ "$bad" -eq 0 ] || die "$name: $bad error replies; first: $(val "$name" first_bad)"
    kill -0 "${srv_pid[$c]}" 2>/dev/null || die "config $c: the server died"
    sleep 1
}
us_per_req() {
    awk -v c="$(val "$1" server_cpu_s)" -v k="$(val "$1" ok)" 'BEGIN{if (k > 0) printf "%.0f", c * 1e6 / k; else print "-"}'
}
# Cores used during a run by: the server, wrk, everything else (the idle
# servers, kernel softirq for loopback TCP, other jobs on the machine).
cores() {
    awk -v b="$(val "$1" machine_busy_s)" -v s="$(val "$1" server_cpu_s)" -v w="$(val "$1" wrk_cpu_s)" \
        -v t="$(val "$1" machine_total_s)" -v k="$(nproc)" 'BEGIN{d = t / k; if (d <= 0) d = 1
        o = b - s - w; if (o < 0) o = 0; printf "%.2f / %.2f / %.2f", s / d, w / d, o / d}'
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$(date +%s)
log "measuring: $rounds rounds x ${#wl_list[@]} workloads x 3 configurations, wrk -t$threads -c$conns -d${duration}s"
for r in $(seq "$rounds"); do
    # Rotate the order of the configurations per round.
    order=()
    for i in 0 1 2; do order+=("${configs[$(((i + r - 1) % 3))]}"); done
    for w in "${wl_list[@]}"; do
        for c in "${order[@]}"; do run_wrk "$c" "$w" "$r"; done
    done
done
t_measure=$(($(date +%s) - t_start))

# ---------------------------------------------------------------- profile
profile=${BENCH_PROFILE:-}
callgraph=${BENCH_PERF_CALLGRAPH:-dwarf}
if [ -n "$profile" ] && command -v perf >/dev/null; then
    [ "$profile" != all ] || profile=$workloads
    IFS=, read -r -a plist <<<"$profile"
    for w in "${plist[@]}"; do
        case $w in
        get_by_id) s=get_by_id.lua p="$api/report/All_Items/" ;;
        report) s=report.lua p="$api/report/All_Items" ;;
        add_one) s=add_one_rounds.lua p="$api/form/Item" ;;
        *) die "BENCH_PROFILE: unknown workload '$w'" ;;
        esac
        for c in "${configs[@]}"; do
            log "profiling $w on $c with perf ($callgraph call graphs, 5 s)"
            env BENCH_DIR="$here" BENCH_TOKEN="${token[$c]}" BENCH_PATH_PREFIX="$p" \
                BENCH_RESULT="$tmp/prof.txt" BENCH_IDS="$tmp/$c/ids.txt" BENCH_SEEDED="$seeded" \
                BENCH_TID_OFFSET=$(((rounds + 1) * 10)) \
                timeout 60 wrk -t"$threads" -c"$conns" -d9s --timeout 10s -s "$here/$s" "${base[$c]}" \
                >/dev/null 2>&1 &
            wpid=$!
            bg_pids+=("$wpid")
            sleep 2
            cg=(--call-graph "$callgraph")
            [ "$callgraph" != none ] || cg=()
            pd=$out/perf-enc-$w-$c.data
            rm -f "$pd" "$pd.old"
            perf record -q -e cpu-clock -F 499 "${cg[@]}" -p "${srv_pid[$c]}" -o "$pd" -- sleep 5 \
                >/dev/null 2>&1 || log "perf record failed for $w $c"
            wait "$wpid" || true
            {
                echo "# $w on $c (${cname[$c]}): server CPU by symbol (self), cpu-clock samples"
                perf report -i "$pd" --stdio --no-children --sort dso,symbol --percent-limit 0.5 \
                    -g none 2>/dev/null | grep -v -e '^$' -e '^# [(.T]' || true
                echo
                echo "# $w on $c: by shared object"
                perf report -i "$pd" --stdio --no-children --sort dso -g none 2>/dev/null |
                    grep -v -e '^#' -e '^$' | head -15 || true
                if [ "$callgraph" != none ]; then
                    echo
                    echo "# $w on $c: inclusive (self + callees), named symbols >= 1.5%"
                    perf report -i "$pd" --stdio --children --sort symbol --percent-limit 1.5 \
                        -g none 2>/dev/null | grep -v -e '^#' -e '^$' -e '\] 0x0000' | head -80 || true
                fi
            } >"$out/perf-enc-$w-$c.txt"
            log "wrote bench/out/perf-enc-$w-$c.txt"
        done
    done
fi

# ----------------------------------------------------------------- report
median() { # values...
    printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END{if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
binid() { # path
    echo "sha256 $(sha256sum "$1" | cut -c1-12), built $(date -u -r "$1" '+%Y-%m-%d %H:%M UTC')"
}
tree="?"
if git -C "$root" rev-parse --short HEAD >/dev/null 2>&1; then
    tree=$(git -C "$root" rev-parse --short HEAD)
    [ -z "$(git -C "$root" status --porcelain -- src 2>/dev/null)" ] || tree="$tree + uncommitted src changes"
fi
machine_cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
kver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }

declare -A med_rps med_us
{
    echo "## Encryption at rest: cost, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- machine: $(nproc) cores, ${machine_cpu:-unknown CPU}, Linux $(uname -r); data on $(df -T "$tmp" | awk 'NR==2{print $2 " on " $1}'); load average before: $load_before"
    echo "- packages: GnuTLS $(kver libgnutls30), SQLite $(kver libsqlite3-0), libmicrohttpd $(kver libmicrohttpd12), wrk $(kver wrk)"
    echo "- binaries (tree at $tree): encrypting (E, F) $(binid "$bin_enc"); plain VFS (P, FV_BENCH_PLAIN_VFS) $(binid "$bin_plain")"
    echo "- on disk: P $(on_disk P), E $(on_disk E), F $(on_disk F); settings: $settings; SQLite synchronous=FULL, WAL, mmap_size=0 in all three"
    echo "- wrk -t$threads -c$conns -d${duration}s, HTTPS keep-alive; $rounds rounds, configuration order rotated per round; $seeded records seeded per configuration; add_one grows each database by its adds, the same for all three"
    echo "- responses: get by ID ${item_bytes[P]} / ${item_bytes[E]} / ${item_bytes[F]} B, report ${report_bytes[P]} / ${report_bytes[E]} / ${report_bytes[F]} B (P / E / F); seeding $seeded records took ${seed_secs[P]} / ${seed_secs[E]} / ${seed_secs[F]} s"
    echo "- tenant database (+ WAL) after seeding: ${seed_mib[P]} / ${seed_mib[E]} / ${seed_mib[F]} MiB, at the end: $(db_mib P) / $(db_mib E) / $(db_mib F) MiB (P / E / F); SQLite page cache 4 MiB per connection (cache_size=-4096)"
    echo "- measuring took ${t_measure} s; every run had 0 errors (the script stops at the first)"
    echo
    echo "| workload | round | config | req/s | p50 ms | p99 ms | server CPU µs/req | cores: server / wrk / other |"
    echo "|---|---:|---|---:|---:|---:|---:|---:|"
    for w in "${wl_list[@]}"; do
        for r in $(seq "$rounds"); do
            for c in "${configs[@]}"; do
                n="${w}_${c}_${r}"
                printf '| %s | %s | %s | %.0f | %s | %s | %s | %s |\n' "$w" "$r" "$c" "$(val "$n" ok_rps)" \
                    "$(val "$n" p50_ms)" "$(val "$n" p99_ms)" "$(us_per_req "$n")" "$(cores "$n")"
            done
        done
    done
    echo
    echo "Medians over the rounds, and ratios: \"of medians\" divides the medians; \"paired\" is the median of the per-round ratios (same round, adjacent runs)."
    echo
    echo "| workload | P req/s | E req/s | F req/s | E/P of medians | E/P paired (min..max) | F/E of medians | F/E paired (min..max) | µs/req P / E / F | CPU/req E/P | CPU/req F/E |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for w in "${wl_list[@]}"; do
        for c in "${configs[@]}"; do
            vals=() us=()
            for r in $(seq "$rounds"); do
                vals+=("$(val "${w}_${c}_${r}" ok_rps)")
                us+=("$(awk -v c="$(val "${w}_${c}_${r}" server_cpu_s)" -v k="$(val "${w}_${c}_${r}" ok)" 'BEGIN{print c * 1e6 / k}')")
            done
            med_rps[$w,$c]=$(median "${vals[@]}")
            med_us[$w,$c]=$(median "${us[@]}")
        done
        ep=() fe=()
        for r in $(seq "$rounds"); do
            ep+=("$(awk -v a="$(val "${w}_E_${r}" ok_rps)" -v b="$(val "${w}_P_${r}" ok_rps)" 'BEGIN{print a / b}')")
            fe+=("$(awk -v a="$(val "${w}_F_${r}" ok_rps)" -v b="$(val "${w}_E_${r}" ok_rps)" 'BEGIN{print a / b}')")
        done
        range() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END{printf "%.2f..%.2f", lo, hi}'; }
        printf '| %s | %.0f | %.0f | %.0f | %.3f | %.3f (%s) | %.3f | %.3f (%s) | %.0f / %.0f / %.0f | %.3f | %.3f |\n' "$w" \
            "${med_rps[$w,P]}" "${med_rps[$w,E]}" "${med_rps[$w,F]}" \
            "$(awk -v a="${med_rps[$w,E]}" -v b="${med_rps[$w,P]}" 'BEGIN{print a / b}')" \
            "$(median "${ep[@]}")" "$(range "${ep[@]}")" \
            "$(awk -v a="${med_rps[$w,F]}" -v b="${med_rps[$w,E]}" 'BEGIN{print a / b}')" \
            "$(median "${fe[@]}")" "$(range "${fe[@]}")" \
            "${med_us[$w,P]}" "${med_us[$w,E]}" "${med_us[$w,F]}" \
            "$(awk -v a="${med_us[$w,E]}" -v b="${med_us[$w,P]}" 'BEGIN{print a / b}')" \
            "$(awk -v a="${med_us[$w,F]}" -v b="${med_us[$w,E]}" 'BEGIN{print a / b}')"
        echo "$w $(median "${ep[@]}") $(median "${fe[@]}")" >>"$tmp/paired.txt"
    done
    echo
    echo "| goal | workload | measured (paired median) | verdict |"
    echo "|---|---|---:|---|"
    while read -r w ep fe; do
        awk -v w="$w" -v ep="$ep" -v fe="$fe" 'BEGIN{
            printf "| encrypted storage costs <= 15%% (E/P >= 0.85) | %s | %.3f (cost %.1f%%) | %s |\n", w, ep, (1 - ep) * 100, (ep >= 0.85 ? "met" : "NOT met")
            printf "| 3 encrypted fields cost <= 10%% (F/E >= 0.90) | %s | %.3f (cost %.1f%%) | %s |\n", w, fe, (1 - fe) * 100, (fe >= 0.90 ? "met" : "NOT met") }'
    done <"$tmp/paired.txt"
} | tee "$out/encryption.md"
