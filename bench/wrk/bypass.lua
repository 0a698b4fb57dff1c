-- Try to skip the snapshot: a random query string and no-cache request headers on every
-- request. Compare with fixed.lua, which pays the same Lua cost for a plain request.
dofile("bench/wrk/report.lua")

local path = nil

function request()
  path = path or wrk.path
  return wrk.format("GET", path .. "?x=" .. math.random(1, 1000000000), {
    ["Cache-Control"] = "no-cache",
    ["Pragma"] = "no-cache",
  })
end
