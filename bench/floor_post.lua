-- The floor's POST: the same JSON body as create.lua, to the bare Starlette app (bench/floor.py),
-- which reads it and answers 1 KiB. Compared with creation (-c64) and with actions (-c1 -t1).
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "stats.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/occi+json"
wrk.body = '{"kind":"http://schemas.ogf.org/occi/infrastructure#compute",' ..
   '"attributes":{"occi.core.title":"bench","occi.compute.cores":2,"occi.compute.memory":4.0}}'

if os.getenv("BENCH_WANT_RESPONSE") == "1" then
   -- Same per-response work in wrk as actions.lua (which needs response()), for the -c1 floor.
   local turn = 1
   function response(status, headers, body)
      turn = 3 - turn
   end
end
