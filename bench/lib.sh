# bench/lib.sh: shell helpers shared by bench/run.sh and bench/encryption.sh
# (sourced; defines functions only).

stop_pid() { # pid: TERM, wait up to 10 s, then KILL
    local p=$1 _
    [ -n "$p" ] || return 0
    kill -TERM "$p" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}

machine_ticks() {
    awk '/^cpu /{busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, busy + $5 + $6; exit}' /proc/stat
}

# The seed body of batch b (records b*200+1 .. b*200+200) on stdout: Seq 1..N
# unique, fixed-width values so every get-by-ID body has the same size.
seed_body() { # b
    local b=$1
    awk -v b="$b" 'BEGIN {
        split("Open In_Progress Done Cancelled", st, " ")
        printf "{\"data\":["
        for (j = 1; j <= 200; j++) {
            i = b * 200 + j
            printf "%s{\"Code\":\"C%06d\",\"Seq\":%d,\"Qty\":%d,\"Price\":\"%d.%02d\",", (j > 1 ? "," : ""), i, i, 100 + i % 900, 10 + i % 90, i % 100
            printf "\"Due\":\"2026-%02d-%02d\",\"Status\":\"%s\",", i % 12 + 1, i % 28 + 1, st[i % 4 + 1]
            printf "\"Contact\":\"user%06d@example.com\",\"Notes\":\"seeded item %06d\\nsecond line\"}", i, i
        }
        printf "]}"
    }'
}
