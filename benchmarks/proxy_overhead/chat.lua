-- wrk script: a unique chat prompt per request (so every request misses the exact cache and
-- is routed, forwarded and recorded), POSTed as JSON. Env: MODEL (default "auto"),
-- STREAM=1 for streaming requests, WRK_PATH (default /v1/chat/completions), API_KEY.
-- At the end it prints one JSON line with requests/s and latency percentiles (µs).
local counter = 0
local stream = os.getenv("STREAM") == "1"
local model = os.getenv("MODEL") or "auto"
local path = os.getenv("WRK_PATH") or "/v1/chat/completions"
local key = os.getenv("API_KEY") or "sk-bench-0123456789abcdef0123456789abcdef"

function init(args)
  math.randomseed(os.time())
  prefix = tostring(math.random(1, 1000000000)) .. "-" .. tostring(os.clock())
end

request = function()
  counter = counter + 1
  local body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"Hello there, '
    .. 'how are you today? request ' .. prefix .. '-' .. counter .. '"}]'
  if stream then
    body = body .. ',"stream":true,"stream_options":{"include_usage":true}'
  end
  body = body .. '}'
  return wrk.format("POST", path,
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key}, body)
end

done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    'WRK_JSON {"requests": %d, "rps": %.1f, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
    .. '"max_us": %d, "errors": %d, "non2xx": %d}\n',
    summary.requests, summary.requests / seconds, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max, errors, summary.errors.status))
end
