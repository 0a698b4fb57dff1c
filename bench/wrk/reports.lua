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

function request()
  sent = sent + 1
  -- 10.<thread's block>.<high>.<low>: distinct within a run of up to a million per thread.
  local block = ((thread_number or 0) * 16 + math.floor(sent / 65536)) % 256
  local address = string.format("10.%d.%d.%d", block, math.floor(sent / 256) % 256, sent % 256)
  return wrk.format("POST", wrk.path, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["HX-Request"] = "true",
    ["X-Forwarded-For"] = address,
    ["User-Agent"] = string.format("beacon-bench/%d.%d", thread_number or 0, sent),
  }, body)
end
