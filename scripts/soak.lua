-- wrk's request mix for scripts/soak.sh. Each wrk thread cycles through the kinds below, so
-- every connection sends all of them: plain text, gzip, OpenMetrics (with and without gzip) and
-- collect[] filters (raw and percent-encoded brackets).
-- Arguments (after `--`): the collectors that succeeded in the lone baseline scrape.
-- It counts responses by status, by content type and encoding, and, in every uncompressed 200
-- body, each `node_scrape_collector_success{collector="X"} 0` for a collector X of the baseline
-- (a collector failure beyond the baseline). After a 503 (the designed answer beyond
-- web.max_requests) the thread waits 50 ms before its next request, as a client backing off
-- would, instead of spinning on the refusal.

local OM = "application/openmetrics-text; version=1.0.0"
local kinds = {
  { "/metrics", {} },
  { "/metrics", { ["Accept-Encoding"] = "gzip" } },
  { "/metrics", { ["Accept"] = OM } },
  { "/metrics", { ["Accept"] = OM, ["Accept-Encoding"] = "gzip" } },
  { "/metrics?collect[]=cpu&collect[]=meminfo", {} },
  { "/metrics?collect[]=cpu&collect[]=meminfo", { ["Accept-Encoding"] = "gzip" } },
  { "/metrics?collect%5B%5D=filesystem&collect%5B%5D=diskstats&collect%5B%5D=netdev",
    { ["Accept"] = OM } },
  { "/metrics?collect[]=loadavg&collect[]=vmstat", { ["Accept"] = OM, ["Accept-Encoding"] = "gzip" } },
}

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  baseline = {}
  for _, c in ipairs(args) do baseline[c] = true end
  requests = {}
  for i, k in ipairs(kinds) do
    local headers = { ["Host"] = wrk.headers["Host"] }
    for h, v in pairs(k[2]) do headers[h] = v end
    requests[i] = wrk.format("GET", k[1], headers)
  end
  n = 0
  backoff = 0
  -- Counters, read by done() through thread:get (numbers and strings only).
  s2xx, s503, sother, other_codes = 0, 0, 0, ""
  gzip, openmetrics, checked, bad, bad_names = 0, 0, 0, 0, ""
end

function request()
  n = n + 1
  return requests[(n - 1) % #requests + 1]
end

function delay()
  if backoff > 0 then
    backoff = backoff - 1
    return 50
  end
  return 0
end

local function header(headers, name)
  return headers[name] or headers[name:lower()]
end

function response(status, headers, body)
  if status == 503 then
    s503 = s503 + 1
    backoff = backoff + 1
    return
  end
  if status < 200 or status > 299 then
    sother = sother + 1
    if #other_codes < 200 then other_codes = other_codes .. " " .. status end
    return
  end
  s2xx = s2xx + 1
  local ctype = header(headers, "Content-Type") or ""
  if ctype:find("openmetrics", 1, true) then openmetrics = openmetrics + 1 end
  if (header(headers, "Content-Encoding") or "") == "gzip" then
    gzip = gzip + 1
    return
  end
  checked = checked + 1
  for c, v in body:gmatch('node_scrape_collector_success{collector="([^"]+)"} ([0-9.eE+-]+)') do
    if baseline[c] and tonumber(v) == 0 then
      bad = bad + 1
      if #bad_names < 200 then bad_names = bad_names .. " " .. c end
    end
  end
end

function done(summary, latency, reqs)
  local t = { s2xx = 0, s503 = 0, sother = 0, gzip = 0, openmetrics = 0, checked = 0, bad = 0 }
  local codes, names = "", ""
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + (thread:get(k) or 0) end
    codes = codes .. (thread:get("other_codes") or "")
    names = names .. (thread:get("bad_names") or "")
  end
  local e = summary.errors
  -- One line per figure, `wrk-soak KEY VALUE`, for soak.sh to parse.
  io.write(string.format("wrk-soak requests %d\n", summary.requests))
  io.write(string.format("wrk-soak status_2xx %d\n", t.s2xx))
  io.write(string.format("wrk-soak status_503 %d\n", t.s503))
  io.write(string.format("wrk-soak status_other %d\n", t.sother))
  io.write(string.format("wrk-soak other_codes %s\n", codes == "" and "-" or codes))
  io.write(string.format("wrk-soak socket_errors %d\n", e.connect + e.read + e.write + e.timeout))
  io.write(string.format("wrk-soak socket_errors_detail connect=%d,read=%d,write=%d,timeout=%d\n",
    e.connect, e.read, e.write, e.timeout))
  io.write(string.format("wrk-soak gzip %d\n", t.gzip))
  io.write(string.format("wrk-soak openmetrics %d\n", t.openmetrics))
  io.write(string.format("wrk-soak bodies_checked %d\n", t.checked))
  io.write(string.format("wrk-soak collector_failures %d\n", t.bad))
  io.write(string.format("wrk-soak collector_failure_names %s\n", names == "" and "-" or names))
  io.write(string.format("wrk-soak latency_p50_ms %.1f\n", latency:percentile(50) / 1000))
  io.write(string.format("wrk-soak latency_p99_ms %.1f\n", latency:percentile(99) / 1000))
  io.write(string.format("wrk-soak latency_max_ms %.1f\n", latency.max / 1000))
end
