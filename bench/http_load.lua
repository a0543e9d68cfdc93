-- wrk script for bench/http_load.sh.
--
--   wrk ... -s bench/http_load.lua http://127.0.0.1:PORT -- MODE MAX_ID DATE
--
-- MODE read:  GET /api/v1/recipients/{id}, id uniformly random in 1..MAX_ID
-- MODE write: POST /api/v1/certifications {recipient_id random, channel counter, date DATE, outcome pass}
-- The session token comes from the environment (LIFECERT_BENCH_TOKEN), not the
-- command line, so it does not show in `ps`.
-- At the end it prints one line "statuses: CODE=COUNT ..." summed over all threads.

local threads = {}
local next_thread = 1

function setup(thread)
  thread:set("thread_no", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

local mode, max_id, date, token
counts = {}  -- global: done() reads it from each thread with thread:get

function init(args)
  mode = args[1] or "read"
  max_id = tonumber(args[2] or "100000")
  date = args[3] or os.date("%Y-%m-%d")
  token = os.getenv("LIFECERT_BENCH_TOKEN") or ""
  math.randomseed(os.time() * 1000 + (thread_no or 0) * 7919)
  wrk.headers["Authorization"] = "Bearer " .. token
  if mode == "write" then
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
  else
    wrk.method = "GET"
  end
end

function request()
  local id = math.random(1, max_id)
  if mode == "write" then
    local body = string.format(
      '{"recipient_id":%d,"channel":"counter","date":"%s","outcome":"pass"}', id, date)
    return wrk.format(nil, "/api/v1/certifications", nil, body)
  end
  return wrk.format(nil, "/api/v1/recipients/" .. id)
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local c = thread:get("counts")
    if type(c) == "table" then
      for code, n in pairs(c) do
        total[code] = (total[code] or 0) + n
      end
    end
  end
  local codes = {}
  for code, _ in pairs(total) do table.insert(codes, code) end
  table.sort(codes)
  local parts = {}
  for _, code in ipairs(codes) do
    table.insert(parts, string.format("%d=%d", code, total[code]))
  end
  io.write("statuses: " .. table.concat(parts, " ") .. "\n")
end
