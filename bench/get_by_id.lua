-- bench/get_by_id.lua: GET one record by ID, IDs drawn at random from
-- $BENCH_IDS (one per line) and appended to $BENCH_PATH_PREFIX. The nginx
-- ceiling run uses this same script with a prefix nginx maps to a static
-- copy of a get-by-ID response, so both sides pay the same client cost.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")

local prefix = os.getenv("BENCH_PATH_PREFIX")
local ids = {}

function init(args)
    for line in io.lines(os.getenv("BENCH_IDS")) do
        ids[#ids + 1] = line
    end
    math.randomseed(os.time() + tid * 7919)
end

function request()
    return wrk.format("GET", prefix .. ids[math.random(#ids)], get_headers)
end

function check_body(body)
    return string.find(body, '{"code":3000,', 1, true) == 1
        and string.find(body, '"data":{', 1, true) ~= nil
end
