-- wrk script: GETs the query endpoints as many users at once.
--
--   WRK_TARGETS=targets.txt wrk -t2 -c1000 -d20s --timeout 5s \
--     -s bench/wrk/queries.lua http://127.0.0.1:8080
--
-- WRK_TARGETS names a file of lines "<access token> <path>", e.g.
--   eyJ... /api/v1/bot
--   eyJ... /api/v1/bot/5b0c.../status
-- (`muckard-bench api` writes one for its own users). Without it, TOKEN
-- (an access token from /api/v1/auth/login) is used for every path in
-- PATHS (comma-separated; default: the caller's bot overview, trades,
-- positions, profile and keys).
--
-- Each connection walks the targets from its own starting point. At the
-- end the script prints one line "WRK_JSON {...}" with the request count,
-- the latency percentiles in microseconds and the errors (non-2xx/3xx
-- answers, connect/read/write errors and timeouts), for tools to parse.

local targets = {}
local threads = {}

local function load_targets()
  local list = {}
  local file = os.getenv("WRK_TARGETS")
  if file and file ~= "" then
    for line in io.lines(file) do
      local token, path = line:match("^(%S+)%s+(%S+)$")
      if token then
        table.insert(list, { token, path })
      end
    end
  else
    local token = os.getenv("TOKEN") or error("set WRK_TARGETS or TOKEN")
    local paths = os.getenv("PATHS")
      or "/api/v1/bot,/api/v1/trading/trades?limit=20,/api/v1/trading/positions,/api/v1/user/me,/api/v1/kraken/keys"
    for path in paths:gmatch("[^,]+") do
      table.insert(list, { token, path })
    end
  end
  if #list == 0 then
    error("no targets")
  end
  return list
end

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  targets = load_targets()
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
  position = math.random(#targets)
  requests = {}
  for i, target in ipairs(targets) do
    requests[i] = wrk.format("GET", target[2], { ["Authorization"] = "Bearer " .. target[1] })
  end
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
