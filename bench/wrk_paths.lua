-- wrk script for bench/xmlapi_bench.py: cycle through pre-signed request paths.
--   wrk -t1 -c50 -d8s --latency -s bench/wrk_paths.lua http://127.0.0.1:PORT -- PATHS_FILE
-- PATHS_FILE holds one path+query per line (e.g. /bigbluebutton/api/create?...&checksum=...).
-- Every response must be 200 with <returncode>SUCCESS</returncode> in its body; the others
-- are counted as failures and reported in the WRKJSON line that done() prints.

local paths = {}
local counter = 0
failures = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  if #paths == 0 then error("no paths in " .. tostring(args[1])) end
  -- Each connection's first request starts at a different place in the list.
  counter = 0
end

function request()
  counter = counter + 1
  if counter > #paths then counter = 1 end
  return wrk.format("GET", paths[counter])
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, "<returncode>SUCCESS</returncode>", 1, true) then
    failures = failures + 1
  end
end

function done(summary, latency, requests)
  local failed = 0
  for _, thread in ipairs(threads) do
    failed = failed + thread:get("failures")
  end
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, "failed_checks": %d, ' ..
    '"errors_connect": %d, "errors_read": %d, "errors_write": %d, "errors_status": %d, ' ..
    '"errors_timeout": %d, "lat_p50_us": %d, "lat_p90_us": %d, "lat_p99_us": %d, ' ..
    '"lat_mean_us": %.1f, "lat_max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, failed,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
