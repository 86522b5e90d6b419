-- Signed-in POSTs of new film requests, each for another TMDB id (from BENCH_FIRST_ID on),
-- so that none is refused as a duplicate. Every answer other than 2xx counts as an error.
local next_id = tonumber(os.getenv("BENCH_FIRST_ID") or "900000")
local not_2xx = 0
local threads = {}

setup = function(thread)
  table.insert(threads, thread)
end

init = function(args)
  wrk.method = "POST"
  wrk.headers["Cookie"] = os.getenv("BENCH_COOKIE") or ""
  wrk.headers["X-CSRF-Token"] = os.getenv("BENCH_CSRF") or ""
  wrk.headers["Content-Type"] = "application/json"
end

request = function()
  local body = string.format('{"media_type": "movie", "tmdb_id": %d}', next_id)
  next_id = next_id + 1
  return wrk.format(nil, nil, nil, body)
end

response = function(status, headers, body)
  if status < 200 or status > 299 then
    not_2xx = not_2xx + 1
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("not_2xx") or 0)
  end
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, "not_2xx": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout, bad))
end
