-- GET of the URL given on the wrk command line (headers such as Accept come from -H).
-- Only adds the BENCH_JSON summary line (stats.lua).
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "stats.lua")
