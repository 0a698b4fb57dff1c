-- Count responses by status code in every wrk thread and print one JSON line at the end.
-- Loaded by bench/run.py for every wrk run (`wrk -s bench/wrk/report.lua ...`); other
-- scripts dofile() it and add a request() function.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  codes = {}
end

-- Handing every response to Lua costs wrk about a fifth of its speed at nginx rates, so
-- BENCH_COUNT_CODES=0 leaves it out; wrk itself still counts statuses >= 400 as errors.
if os.getenv("BENCH_COUNT_CODES") ~= "0" then
  function response(status, headers, body)
    codes[status] = (codes[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("codes") or {}) do
      total[status] = (total[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(total) do
    parts[#parts + 1] = string.format('"%d":%d', status, count)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d},' ..
    '"codes":{%s},"counted":%s}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9),
    table.concat(parts, ","), tostring(response ~= nil)))
end
