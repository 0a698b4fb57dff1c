-- Made-up URLs, a new one per request (bench/misses.py): `wrk ... -s bench/wrk/misses.lua
-- <url> -- incident` asks for /incidents/<12 random characters>/, `-- history` for
-- /history/?page=<100000..999999>. Status codes are counted by report.lua.
dofile("bench/wrk/report.lua")

local ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
local report_setup, report_init = setup, init
local started = 0

function setup(thread)
  started = started + 1
  thread:set("thread_number", started)
  report_setup(thread)
end

function init(args)
  report_init(args)
  -- LuaJIT starts every thread on the same sequence: each thread gets its own.
  math.randomseed(os.time() * 1000 + (thread_number or 0))
  kind = args[1] or "incident"
end

local function code()
  local chars = {}
  for i = 1, 12 do
    local k = math.random(1, #ALPHABET)
    chars[i] = ALPHABET:sub(k, k)
  end
  return table.concat(chars)
end

function request()
  if kind == "history" then
    return wrk.format("GET", "/history/?page=" .. math.random(100000, 999999))
  end
  return wrk.format("GET", "/incidents/" .. code() .. "/")
end
