-- Alternating stop/start actions on one Compute (the URL's path), for `wrk -c1 -t1`: one
-- connection, so each action answers before the next is sent and the states alternate
-- active -> inactive -> active. BENCH_FIRST (stop or start) is the action the current state
-- allows; run.sh reads the state before each wrk run.
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "stats.lua")

local scheme = "http://schemas.ogf.org/occi/infrastructure/compute/action#"
local headers = {["Content-Type"] = "application/occi+json", ["Accept"] = "application/occi+json"}
local order = {"stop", "start"}
local turn = (os.getenv("BENCH_FIRST") == "start") and 2 or 1
local prepared = {}

function init(args)
   for _, term in ipairs(order) do
      prepared[term] = wrk.format("POST", wrk.path .. "?action=" .. term, headers,
                                  '{"action":"' .. scheme .. term .. '"}')
   end
end

function request()
   local term = order[turn]
   turn = 3 - turn
   return prepared[term]
end
