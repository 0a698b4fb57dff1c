-- The control for bypass.lua: the same per-request Lua call, for the plain request.
dofile("bench/wrk/report.lua")

function request()
  return wrk.format("GET", wrk.path)
end
