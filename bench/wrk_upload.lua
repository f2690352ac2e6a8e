-- wrk script for bench/api.py --client wrk: uploads real MNIST test digits in turn, as
-- multipart bodies that bench/api.py wrote to files, and prints one summary line.
-- Arguments (after --): folder with 0.bin .. N-1.bin, N, multipart boundary, and an API key
-- (optional: sent as Authorization: Bearer).

local bodies = {}
local headers = {}
local counter = 0

function init(args)
  local folder, count = args[1], tonumber(args[2])
  headers["Content-Type"] = "multipart/form-data; boundary=" .. args[3]
  if args[4] then
    headers["Authorization"] = "Bearer " .. args[4]
  end
  for i = 0, count - 1 do
    local file = assert(io.open(folder .. "/" .. i .. ".bin", "rb"))
    bodies[#bodies + 1] = file:read("*a")
    file:close()
  end
  counter = math.random(#bodies)
end

function request()
  counter = counter % #bodies + 1
  return wrk.format("POST", "/v1/predictions", headers, bodies[counter])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d duration_us=%d status_errors=%d socket_errors=%d p50_ms=%.3f p95_ms=%.3f p99_ms=%.3f\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
