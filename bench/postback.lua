-- wrk script for bench/postback_bench.py: fires /postback requests and counts the answers.
--
-- wrk ... -s bench/postback.lua URL -- MODE THREADS IDS_FILE START TAG TOKEN OUT_DIR
--   MODE distinct: every request a click id of its own (line START.. of IDS_FILE, one id a line,
--                  shared out between the THREADS wrk threads) and an order id of its own
--                  (TAG-thread-n), so each one must create a new conversion;
--   MODE same:     every request the same postback (first id of IDS_FILE at START, order TAG),
--                  a retry storm: one conversion, every other answer a duplicate.
-- Answers: 200 accepted / 200 duplicate / other 2xx / non-2xx, summed over threads in done().
-- The conversion id of every "accepted" answer is appended to OUT_DIR/accepted-THREAD, so the
-- benchmark can check that each one is in PostgreSQL.
local threads = {}
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

function init(args)
  accepted, duplicate, other_2xx, non_2xx, wrapped = 0, 0, 0, 0, 0
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
  if mode == "same" then
    fixed = wrk.format("GET", "/postback?click_id=" .. ids[1] .. "&order_id=" .. tag
      .. "&token=" .. token)
  end
end

function request()
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
  local totals = { accepted = 0, duplicate = 0, other_2xx = 0, non_2xx = 0, wrapped = 0 }
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + thread:get(name)
    end
  end
  for _, name in ipairs({ "accepted", "duplicate", "other_2xx", "non_2xx", "wrapped" }) do
    io.write(string.format("COUNT_%s %d\n", string.upper(name), totals[name]))
  end
end
