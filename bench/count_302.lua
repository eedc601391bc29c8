-- wrk script: count 302 answers per thread and print the total, so the benchmark can compare
-- what the load tool saw with the rows that reached PostgreSQL.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  found = 0
  other = 0
end

function response(status, headers, body)
  if status == 302 then
    found = found + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local total_302, total_other = 0, 0
  for _, thread in ipairs(threads) do
    total_302 = total_302 + thread:get("found")
    total_other = total_other + thread:get("other")
  end
  io.write(string.format("COUNT_302 %d\nCOUNT_OTHER %d\n", total_302, total_other))
end
