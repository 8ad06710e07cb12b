-- wrk script used by every bench scenario.
--
-- Arguments after `--`, one per request kind, sent in turn:
--     "METHOD PATH [TOKEN|-] [JSON BODY]"
-- TOKEN (when not "-") goes into `Authorization: Bearer TOKEN`; a body is sent as application/json.
-- "stop_after=N" makes the thread stop once N responses have arrived and print "BENCH-STOP"
-- (the bench then interrupts wrk, which reports what it did so far).
-- done() prints one "BENCH-RESULT {json}" line that bench/wrk.py parses.
--
-- By hand:
--   wrk -t1 -c64 -d10s --latency -s bench/lua/requests.lua http://127.0.0.1:8000 -- "GET /getchatts/?limit=100"
--   wrk -t1 -c64 -d10s --latency -s bench/lua/requests.lua http://127.0.0.1:8000 \
--       -- 'POST /postchatt/ - {"username":"bench","message":"hello"}'

local specs = {}
local prepared = {}
local next_index = 0
local stop_after = nil
local responses = 0

local function parse(spec)
  local method, path, rest = spec:match("^(%S+)%s+(%S+)%s*(.*)$")
  if not method then
    error("bad request spec: " .. spec)
  end
  local token, body = rest:match("^(%S+)%s*(.*)$")
  local headers = {}
  if token and token ~= "-" then
    headers["Authorization"] = "Bearer " .. token
  end
  if body == nil or body == "" then
    body = nil
  else
    headers["Content-Type"] = "application/json"
  end
  return method, path, headers, body
end

function init(args)
  for i = 1, #args do
    local n = args[i]:match("^stop_after=(%d+)$")
    if n then
      stop_after = tonumber(n)
    else
      table.insert(specs, args[i])
    end
  end

  if #specs == 1 then
    -- One kind of request: let wrk build it once (the fastest path).
    local method, path, headers, body = parse(specs[1])
    wrk.method = method
    wrk.path = path
    wrk.body = body
    for name, value in pairs(headers) do
      wrk.headers[name] = value
    end
  elseif #specs > 1 then
    for i, spec in ipairs(specs) do
      local method, path, headers, body = parse(spec)
      prepared[i] = wrk.format(method, path, headers, body)
    end
    request = function()
      next_index = next_index % #prepared + 1
      return prepared[next_index]
    end
  end

  if stop_after then
    -- Only defined when needed: a response() callback makes wrk parse every response, which costs it CPU.
    response = function(status, headers, body)
      responses = responses + 1
      if responses == stop_after then
        io.write("BENCH-STOP\n")
        io.flush()
        wrk.thread:stop()
      end
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH-RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,'
      .. '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout
  ))
end
