-- A signed-in GET: the session cookie and the CSRF header from the environment.
wrk.method = "GET"
wrk.headers["Cookie"] = os.getenv("BENCH_COOKIE") or ""
wrk.headers["X-CSRF-Token"] = os.getenv("BENCH_CSRF") or ""
wrk.headers["Accept"] = os.getenv("BENCH_ACCEPT") or "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
