-- wrk script: triggers trades on running bots, the benchmark's command.
--
--   TOKEN=<access token> BOT_IDS=<id>,<id>,... wrk -t2 -c32 -d20s \
--     -s bench/wrk/commands.lua http://127.0.0.1:8080
--
-- Every request is POST /api/v1/bot/{id}/trigger-trade on the next bot of
-- BOT_IDS (bots of the TOKEN's user, started and running). Two
-- connections may hit the same bot at once; the command side retries the
-- conflict. Prints "WRK_JSON {...}" like queries.lua; a 409 after the
-- retries counts as an error.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local token = os.getenv("TOKEN") or error("set TOKEN")
  local ids = os.getenv("BOT_IDS") or error("set BOT_IDS")
  requests = {}
  for id in ids:gmatch("[^,]+") do
    table.insert(requests, wrk.format("POST", "/api/v1/bot/" .. id .. "/trigger-trade",
      { ["Authorization"] = "Bearer " .. token }))
  end
  if #requests == 0 then
    error("BOT_IDS is empty")
  end
  position = math.random(#requests)
end

function request()
  position = position % #requests + 1
  return requests[position]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"errors_status":%d,"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean,
    e.status, e.connect, e.read, e.write, e.timeout))
end
