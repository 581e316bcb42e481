-- wrk script of scripts/load.sh (see there). Arguments after `--`:
--   static  METHOD PATH AUTHORIZATION BODY
--       the same request every time
--   codes   METHOD PATH AUTHORIZATION FILE NTHREADS PREFIX SUFFIX
--       one request per line of FILE (this thread takes every NTHREADS-th line), body
--       PREFIX..line..SUFFIX; the thread stops when its lines are used up (single-use codes)
--   chain   METHOD PATH AUTHORIZATION FILE NTHREADS PREFIX SUFFIX
--       as `codes`, but each 200 response's "refresh_token" goes back into the queue
--       (refresh-token rotation: every request spends one token and earns its successor)
-- Counts non-2xx responses and, with microsecond wall-clock stamps (LuaJIT ffi), the window
-- from a thread's first request to its last response, so requests/second are right even when
-- `codes` threads stop before wrk's duration ends. Prints one machine-readable RESULT line.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_usec; } gatehouse_timeval;
int gettimeofday(gatehouse_timeval *tv, void *tz);
]]
local tv = ffi.new("gatehouse_timeval")
local function now_us()
  ffi.C.gettimeofday(tv, nil)
  return tonumber(tv.tv_sec) * 1000000 + tonumber(tv.tv_usec)
end

local threads = {}
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  mode, method, path = args[1], args[2], args[3]
  local headers = { ["Authorization"] = args[4] }
  if method == "POST" then headers["Content-Type"] = "application/x-www-form-urlencoded" end
  non2xx, responses, first_us, last_us, starved, leftover = 0, 0, 0, 0, 0, 0
  if mode == "static" then
    fixed = wrk.format(method, path, headers, args[5])
  else
    local nthreads = tonumber(args[6])
    prefix, suffix, hdrs = args[7] or "", args[8] or "", headers
    queue = {}
    local i = 0
    for line in io.lines(args[5]) do
      if line ~= "" then
        if i % nthreads == id then table.insert(queue, line) end
        i = i + 1
      end
    end
  end
end

function request()
  if first_us == 0 then first_us = now_us() end
  if fixed then return fixed end
  local item = table.remove(queue)
  if item == nil then
    starved = starved + 1
    if mode == "codes" then wrk.thread:stop() end
    item = "none-left"
  end
  return wrk.format(method, path, hdrs, prefix .. item .. suffix)
end

function response(status, headers, body)
  responses = responses + 1
  last_us = now_us()
  if status < 200 or status > 299 then
    -- once a `codes` thread has run out, its last requests carry no code and fail as expected:
    -- as many failures as such requests are theirs, any beyond are real
    if mode == "codes" and leftover < starved then leftover = leftover + 1 else non2xx = non2xx + 1 end
  elseif mode == "chain" then
    local rt = string.match(body, '"refresh_token":"([^"]+)"')
    if rt then table.insert(queue, rt) end
  end
end

function done(summary, latency, requests)
  local non2xx_total, responses_total, first, last, starved_total = 0, 0, nil, 0, 0
  for _, t in ipairs(threads) do
    non2xx_total = non2xx_total + t:get("non2xx")
    responses_total = responses_total + t:get("responses")
    starved_total = starved_total + t:get("starved")
    local f, l = t:get("first_us"), t:get("last_us")
    if f > 0 and (first == nil or f < first) then first = f end
    if l > last then last = l end
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d non2xx=%d socket_errors=%d starved=%d\n",
    responses_total, first and (last - first) or 0, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), non2xx_total, e.connect + e.read + e.write + e.timeout, starved_total))
end
