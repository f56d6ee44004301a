-- bench/common.lua: shared by the wrk scripts of bench/run.sh.
--
-- A workload script loads this file, then defines request() and
-- check_body(body) (true when a 200 response carries the expected body).
-- Every response is classified here: ok, non-200, or 200 with a wrong body,
-- so that a run full of errors cannot pass for a fast one. done() writes the
-- figures as key=value lines to $BENCH_RESULT for run.sh, and the IDs acked
-- by add requests (if the workload collected any) to $BENCH_ACKED.
--
-- Globals set per thread by setup(): tid (1-based thread number).

token = os.getenv("BENCH_TOKEN") or ""
json_headers = {
    ["Authorization"] = "Zoho-oauthtoken " .. token,
    ["Content-Type"] = "application/json",
}
get_headers = {["Authorization"] = "Zoho-oauthtoken " .. token}

-- Main state: the thread objects, for done().
local threads = {}
local next_tid = 1

function setup(thread)
    thread:set("tid", next_tid)
    next_tid = next_tid + 1
    threads[#threads + 1] = thread
end

-- Thread state.
ok, non200, badbody = 0, 0, 0
first_bad = ""
acked = nil -- a table of record IDs when the workload collects them

function response(status, headers, body)
    if status ~= 200 then
        non200 = non200 + 1
        if first_bad == "" then
            first_bad = "HTTP " .. status .. ": " .. string.sub(body or "", 1, 300)
        end
    elseif check_body(body) then
        ok = ok + 1
    else
        badbody = badbody + 1
        if first_bad == "" then
            first_bad = "HTTP 200, unexpected body: " .. string.sub(body or "", 1, 300)
        end
    end
end

function done(summary, latency, requests)
    local n_ok, n_non200, n_bad, bad = 0, 0, 0, ""
    local ids = {}
    for _, t in ipairs(threads) do
        n_ok = n_ok + t:get("ok")
        n_non200 = n_non200 + t:get("non200")
        n_bad = n_bad + t:get("badbody")
        if bad == "" then bad = t:get("first_bad") end
        local a = t:get("acked")
        if a then
            for _, id in ipairs(a) do ids[#ids + 1] = id end
        end
    end
    local secs = summary.duration / 1e6
    local e = summary.errors
    local f = assert(io.open(os.getenv("BENCH_RESULT"), "w"))
    f:write(string.format("requests=%d\n", summary.requests))
    f:write(string.format("duration_s=%.3f\n", secs))
    f:write(string.format("ok=%d\nnon200=%d\nbadbody=%d\n", n_ok, n_non200, n_bad))
    f:write(string.format("ok_rps=%.1f\n", n_ok / secs))
    f:write(string.format("sock_errors=%d\n", e.connect + e.read + e.write + e.timeout))
    f:write(string.format("timeouts=%d\n", e.timeout))
    for _, p in ipairs({50, 90, 99}) do
        f:write(string.format("p%d_ms=%.2f\n", p, latency:percentile(p) / 1000))
    end
    f:write(string.format("max_ms=%.2f\n", latency.max / 1000))
    f:write("first_bad=" .. string.gsub(bad, "[\r\n]", " ") .. "\n")
    f:close()
    local path = os.getenv("BENCH_ACKED")
    if path and path ~= "" then
        local g = assert(io.open(path, "w"))
        for _, id in ipairs(ids) do g:write(id, "\n") end
        g:close()
    end
end
