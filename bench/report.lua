-- bench/report.lua: GET the All_Items report with a criteria on the unique
-- (hence indexed) number field Seq that selects exactly 200 seeded records:
-- Seq >= s && Seq < s + 200 for a random s. One response in 16 is checked
-- for holding exactly 200 records (counting every body would cost the
-- client, which shares the CPU with the server, more than it is worth).
dofile(os.getenv("BENCH_DIR") .. "/common.lua")

local prefix = os.getenv("BENCH_PATH_PREFIX")
local seeded = tonumber(os.getenv("BENCH_SEEDED"))
local n = 0

function init(args)
    math.randomseed(os.time() + tid * 7919)
end

function request()
    local s = math.random(1, seeded - 199)
    -- criteria=(Seq >= s && Seq < s+200), URL-encoded
    local q = string.format("?criteria=Seq%%3E%%3D%d%%26%%26Seq%%3C%d&max_records=200", s, s + 200)
    return wrk.format("GET", prefix .. q, get_headers)
end

function check_body(body)
    if string.find(body, '{"code":3000,', 1, true) ~= 1 then
        return false
    end
    n = n + 1
    if n % 16 == 0 then
        local _, count = string.gsub(body, '"ID":"', "")
        return count == 200
    end
    return true
end
