-- wrk script: a unique chat prompt per request (so every request misses the cache and is
-- routed, forwarded and recorded), POSTed as JSON. Set STREAM=1 for streaming requests.
local counter = 0
local stream = os.getenv("STREAM") == "1"
local model = os.getenv("MODEL") or "auto"
local thread_id = 0
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  thread_id = tid or 0
end

request = function()
  counter = counter + 1
  local body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"Hello there, '
    .. 'how are you today? request ' .. thread_id .. '-' .. counter .. '"}]'
  if stream then
    body = body .. ',"stream":true,"stream_options":{"include_usage":true}'
  end
  body = body .. '}'
  return wrk.format("POST", "/v1/chat/completions",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer bench-key"}, body)
end
