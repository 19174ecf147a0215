-- wrk script for bench/http/run.py: tallies responses per worker named in the
-- body (`[worker:<id>] ...`) in each thread's own Lua state, merges the
-- threads' tallies in done() through thread:get, and prints them as
-- `HTTPBENCH_*` lines that run.py parses.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

tally = {}
other = 0

function response(status, headers, body)
  local id = body and string.match(body, "^%[worker:([^%]]+)%]")
  if id then
    tally[id] = (tally[id] or 0) + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local merged, nother = {}, 0
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("tally")) do
      merged[k] = (merged[k] or 0) + v
    end
    nother = nother + t:get("other")
  end
  local distinct, maxc, minc = 0, 0, nil
  for _, v in pairs(merged) do
    distinct = distinct + 1
    if v > maxc then maxc = v end
    if minc == nil or v < minc then minc = v end
  end
  io.write(string.format("HTTPBENCH_TALLY distinct=%d max=%d min=%d other=%d\n",
    distinct, maxc, minc or 0, nother))
  if distinct <= 64 then
    for k, v in pairs(merged) do
      io.write(string.format("HTTPBENCH_WORKER %s %d\n", k, v))
    end
  end
  io.write(string.format("HTTPBENCH_LAT p50_us=%d p99_us=%d\n",
    latency:percentile(50), latency:percentile(99)))
end
