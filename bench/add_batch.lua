-- bench/add_batch.lua: POST 200 records per request (Creator's maximum).
-- Codes start with "B" and Seq values lie above every seeded and add-one
-- value, so every record is valid; a 200 with top-level code 3000 means all
-- 200 were added.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")

local path = os.getenv("BENCH_PATH_PREFIX")
local statuses = {"Open", "In_Progress", "Done", "Cancelled"}
local n = 0

function request()
    n = n + 1
    local recs = {}
    for i = 1, 200 do
        local k = n * 200 + i
        recs[i] = string.format(
            '{"Code":"B%d-%09d","Seq":%d,"Qty":%d,"Price":"%d.%02d","Due":"2026-%02d-%02d",' ..
            '"Status":"%s","Contact":"b%d.%d@example.com","Notes":"batch %d record %d"}',
            tid, k, 100000000000 + 1000000000 * tid + k, k % 1000, k % 500, k % 100,
            k % 12 + 1, k % 28 + 1, statuses[k % 4 + 1], tid, k, n, i)
    end
    return wrk.format("POST", path, json_headers, '{"data":[' .. table.concat(recs, ",") .. ']}')
end

function check_body(body)
    return string.find(body, '{"code":3000,', 1, true) == 1
end
