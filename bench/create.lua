-- POST /compute/ with a JSON create request (application/occi+json, GFD.226): one new Compute
-- per request. Each 201 means the entity is committed to the durable store.
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "stats.lua")

wrk.method = "POST"
wrk.path = "/compute/"
wrk.headers["Content-Type"] = "application/occi+json"
wrk.headers["Accept"] = "application/occi+json"
wrk.body = '{"kind":"http://schemas.ogf.org/occi/infrastructure#compute",' ..
   '"attributes":{"occi.core.title":"bench","occi.compute.cores":2,"occi.compute.memory":4.0}}'
