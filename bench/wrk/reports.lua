-- Visitor reports (bench/truth.py): POST /reports/ with a new client address and user agent
-- per request, as many visitors behind the trusted proxy (TRUSTED_PROXY_HOPS=1) would send
-- them, so that neither the limit per address nor the folding of one visitor's reports turns
-- them away; with HX-Request, as the page's form sends it with JavaScript (the answer is the
-- form's partial). BENCH_REPORT_BODY is the form body, e.g. "components=<component id>&symptom=errors".
-- Status codes are counted by report.lua.
dofile("bench/wrk/report.lua")

local report_setup = setup
local started = 0
local body = os.getenv("BENCH_REPORT_BODY") or "components=other"
local sent = 0

function setup(thread)
  started = started + 1
  thread:set("thread_number", started)
  report_setup(thread)
end

-- Each thread counts from BENCH_REPORT_OFFSET in a block of 2^22 addresses of its own, and
-- bench/truth.py moves the offset on for every run: no address comes back within a run or
-- in a later one, where the folding would count its reports once.
local offset = tonumber(os.getenv("BENCH_REPORT_OFFSET") or "0")

function request()
  sent = sent + 1
  local n = ((thread_number or 0) * 4194304 + (offset + sent) % 4194304) % 16777216
  local address = string.format(
    "10.%d.%d.%d", math.floor(n / 65536), math.floor(n / 256) % 256, n % 256
  )
  return wrk.format("POST", wrk.path, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["HX-Request"] = "true",
    ["X-Forwarded-For"] = address,
    ["User-Agent"] = "beacon-bench/" .. address,
  }, body)
end
