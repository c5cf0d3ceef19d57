-- bench/webhooks.lua — wrk script for bench/webhooks.sh: signed GitHub push deliveries.
--
-- Usage: wrk -s bench/webhooks.lua URL/hooks/github -- BODIES.lua RUN_PREFIX
--
--   BODIES.lua  a Lua file returning { {body = "...", sig = "sha256=..."}, ... }: pushes with
--               distinct `after` shas, signed ahead of time (the signature covers the body only,
--               so nothing is hashed here).
--   RUN_PREFIX  a random string unique to this run; every X-GitHub-Delivery is
--               "<RUN_PREFIX>-t<thread>-<counter>", unique across threads and runs, so the
--               daemon answers 202 (new delivery) and never 200 (duplicate).
--
-- done() prints the per-status counts of every thread plus one machine-readable line:
--   BENCH requests=N ok2xx=N accepted202=N dup200=N non2xx=N socket_errors=N
--         duration_s=F deliveries_per_s=F p50_ms=F p90_ms=F p99_ms=F max_ms=F
-- (non2xx counts answered requests whose status was not 2xx; socket errors are counted apart.)

local threads = {}
local next_id = 0

-- Runs in the main Lua state once per thread, before the threads start.
function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

-- The rest runs in each thread's own Lua state.
local bodies
local prefix
local counter = 0
local idx = 0
local headers = {}
counts = {}   -- status code (string) -> count; global so that done() can read it via thread:get

function init(args)
   local data_file = args[1] or error("webhooks.lua: first script argument must be the bodies file")
   prefix = args[2] or error("webhooks.lua: second script argument must be the run prefix")
   bodies = dofile(data_file)
   if #bodies == 0 then error("webhooks.lua: " .. data_file .. " holds no bodies") end
   -- Spread the threads over the bodies so they do not send the same sequence.
   idx = ((tid or 0) * 7919) % #bodies
   prefix = prefix .. "-t" .. tostring(tid or 0) .. "-"
   headers["Content-Type"] = "application/json"
   headers["X-GitHub-Event"] = "push"
   headers["User-Agent"] = "GitHub-Hookshot/gantry-bench"
end

function request()
   idx = idx % #bodies + 1
   counter = counter + 1
   local b = bodies[idx]
   headers["X-GitHub-Delivery"] = prefix .. counter
   headers["X-Hub-Signature-256"] = b.sig
   return wrk.format("POST", nil, headers, b.body)
end

function response(status, hdrs, body)
   local k = tostring(status)
   counts[k] = (counts[k] or 0) + 1
end

function done(summary, latency, requests)
   local total = {}
   for _, thread in ipairs(threads) do
      local c = thread:get("counts") or {}
      local line = {}
      for code, n in pairs(c) do
         total[code] = (total[code] or 0) + n
         table.insert(line, code .. "=" .. n)
      end
      table.sort(line)
      io.write(string.format("thread %d statuses: %s\n", thread:get("tid"), table.concat(line, " ")))
   end
   local answered, ok2xx, codes = 0, 0, {}
   for code, n in pairs(total) do
      answered = answered + n
      if code:sub(1, 1) == "2" then ok2xx = ok2xx + n end
      table.insert(codes, code .. "=" .. n)
   end
   table.sort(codes)
   local e = summary.errors
   local socket_errors = e.connect + e.read + e.write + e.timeout
   local secs = summary.duration / 1e6
   io.write(string.format("statuses: %s\n", table.concat(codes, " ")))
   io.write(string.format(
      "BENCH requests=%d ok2xx=%d accepted202=%d dup200=%d non2xx=%d socket_errors=%d " ..
      "duration_s=%.3f deliveries_per_s=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
      summary.requests, ok2xx, total["202"] or 0, total["200"] or 0, answered - ok2xx,
      socket_errors, secs, ok2xx / secs,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000, latency.max / 1000))
end
