-- Alternating stop/start actions on one Compute (the URL's path), for `wrk -c1 -t1`: one
-- connection, so each action answers before the next is sent and the states alternate
-- active -> inactive -> active. BENCH_FIRST (stop or start) is the action the current state
-- allows; run.sh reads the state before each wrk run.
-- The turn flips in response(), not request(): wrk calls request() once more than it sends (to
-- check the request parses), and after a 409 (the compute was already in the target state) the
-- other action is the right next one too. floor_post.lua defines the same no-op-cost response()
-- when BENCH_WANT_RESPONSE=1, so the one-connection floor pays wrk the same per-response work.
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
   return prepared[order[turn]]
end

function response(status, headers, body)
   turn = 3 - turn
end
