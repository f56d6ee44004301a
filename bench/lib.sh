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
