-- bench/add_one.lua: POST one record per request. Code and Seq are unique
-- per thread and request (thread id + per-thread counter; Code starts with
-- "A", Seq is above every seeded value), so no add fails on uniqueness. The
-- ID of every acknowledged add is kept for the durability check in run.sh.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")

local path = os.getenv("BENCH_PATH_PREFIX")
local statuses = {"Open", "In_Progress", "Done", "Cancelled"}
local n = 0

function init(args)
    acked = {}
end

function request()
    n = n + 1
    local body = string.format(
        '{"data":{"Code":"A%d-%09d","Seq":%d,"Qty":%d,"Price":"%d.%02d",' ..
        '"Due":"2026-%02d-%02d","Status":"%s","Contact":"a%d.%d@example.com",' ..
        '"Notes":"added by wrk thread %d\\nrequest %d"}}',
        tid, n, 1000000000 * tid + n, n % 1000, n % 500, n % 100, n % 12 + 1, n % 28 + 1,
        statuses[n % 4 + 1], tid, n, tid, n)
    return wrk.format("POST", path, json_headers, body)
end

function check_body(body)
    if string.find(body, '{"code":3000,', 1, true) ~= 1 then
        return false
    end
    local id = string.match(body, '"ID":"(%d+)"')
    if not id then
        return false
    end
    acked[#acked + 1] = id
    return true
end
