-- wrk script for bench/postback_bench.py: fires /postback requests and counts the answers.
--
-- wrk ... -s bench/postback.lua URL -- MODE THREADS IDS_FILE START TAG TOKEN OUT_DIR [RATE]
--   MODE distinct: every request a click id of its own (line START.. of IDS_FILE, one id a line,
--                  shared out between the THREADS wrk threads) and an order id of its own
--                  (TAG-thread-n), so each one must create a new conversion;
--   MODE same:     every request the same postback (first id of IDS_FILE at START, order TAG),
--                  a retry storm: one conversion, every other answer a duplicate.
--   RATE (requests/s, all threads together): an open loop instead of wrk's closed one. Each
--                  thread sends on a fixed schedule (one request every THREADS/RATE s) whatever
--                  the answers do, as real advertisers' servers do; latency is then the server's
--                  at that load, not connections / throughput. wrk times a request from its
--                  send, so a send behind its slot (every connection waiting for an answer, or
--                  wrk itself not scheduled) would hide that much of its wait: sends more than
--                  5 ms late are counted (LATE) and the latest one's delay is reported
--                  (LATE_MAX_MS).
-- Answers: 200 accepted / 200 duplicate / other 2xx / non-2xx, summed over threads in done().
-- The conversion id of every "accepted" answer is appended to OUT_DIR/accepted-THREAD, so the
-- benchmark can check that each one is in PostgreSQL.
local threads = {}
local next_tid = 0
local COUNTERS = { "accepted", "duplicate", "other_2xx", "non_2xx", "wrapped", "late", "late_max_ms" }

local ffi = require("ffi")
ffi.cdef([[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock_id, bench_timespec *tp);
]])
local clock = ffi.new("bench_timespec")
local CLOCK_MONOTONIC = 1

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

-- The open loop: delay() (called by wrk before each request on a connection) hands out this
-- thread's next slot; request() takes the oldest slot handed out and counts it late if it is.
local slots, first_slot, last_slot, origin, interval

local function paced_delay()
  local now = now_ms()
  origin = origin or now
  last_slot = last_slot + 1
  local slot = origin + (last_slot - 1) * interval
  slots[last_slot] = slot
  return math.max(0, math.ceil(slot - now))
end

local function slot_take()
  local slot = slots[first_slot]
  slots[first_slot] = nil
  first_slot = first_slot + 1
  if slot then
    local behind = now_ms() - slot
    if behind > 5 then
      late = late + 1
    end
    late_max_ms = math.max(late_max_ms, math.floor(behind))
  end
end

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

function init(args)
  accepted, duplicate, other_2xx, non_2xx, wrapped, late, late_max_ms = 0, 0, 0, 0, 0, 0, 0
  mode = args[1]
  local nthreads, start = tonumber(args[2]), tonumber(args[4])
  tag, token = args[5], args[6]
  ids = {}
  local index = 0
  for line in io.lines(args[3]) do
    if index >= start and (mode == "same" or (index - start) % nthreads == tid) then
      ids[#ids + 1] = line
      if mode == "same" then
        break
      end
    end
    index = index + 1
  end
  sent = 0
  out = io.open(args[7] .. "/accepted-" .. tid, "w")
  local rate = tonumber(args[8] or "0")
  if rate > 0 then
    interval = 1000 * nthreads / rate
    slots, first_slot, last_slot = {}, 1, 0
    delay = paced_delay -- wrk looks for a global delay() after the first thread's init
  end
  if mode == "same" then
    fixed = wrk.format("GET", "/postback?click_id=" .. ids[1] .. "&order_id=" .. tag
      .. "&token=" .. token)
  end
end

function request()
  if slots then
    slot_take()
  end
  if fixed then
    return fixed
  end
  sent = sent + 1
  local position = (sent - 1) % #ids + 1
  if sent > #ids then
    wrapped = wrapped + 1 -- ran out of clicks: reuses one (with a new order id)
  end
  return wrk.format("GET", "/postback?click_id=" .. ids[position] .. "&order_id=" .. tag .. "-"
    .. tid .. "-" .. sent .. "&amount=12.50&token=" .. token)
end

function response(status, headers, body)
  if status == 200 then
    if string.find(body, '"result": "accepted"', 1, true) then
      accepted = accepted + 1
      local id = string.match(body, '"conversion_id": (%d+)')
      if id then
        out:write(id, "\n")
      end
    elseif string.find(body, '"result": "duplicate"', 1, true) then
      duplicate = duplicate + 1
    else
      other_2xx = other_2xx + 1
    end
  elseif status >= 200 and status < 300 then
    other_2xx = other_2xx + 1
  else
    non_2xx = non_2xx + 1
  end
end

function done(summary, latency, requests)
  for _, name in ipairs(COUNTERS) do
    local total = 0
    for _, thread in ipairs(threads) do
      total = name == "late_max_ms" and math.max(total, thread:get(name)) or total + thread:get(name)
    end
    io.write(string.format("COUNT_%s %d\n", string.upper(name), total))
  end
end
