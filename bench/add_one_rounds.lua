-- bench/add_one_rounds.lua: add_one.lua for bench/encryption.sh, which runs
-- add_one several times against the same database. Code and Seq derive from
-- the wrk thread id (tid), so each run shifts tid by $BENCH_TID_OFFSET
-- (0, 10, 20, ...) to keep them unique across runs. Body and checks are
-- add_one.lua's.
dofile(os.getenv("BENCH_DIR") .. "/add_one.lua")

local offset = tonumber(os.getenv("BENCH_TID_OFFSET") or "0")
local base_setup = setup

function setup(thread)
    base_setup(thread)
    thread:set("tid", thread:get("tid") + offset)
end
