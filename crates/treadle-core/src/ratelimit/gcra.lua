-- treadle GCRA: the algorithm of treadle_core::ratelimit::Quota::decide, for Redis.
--
-- KEYS[1]  the state key (holds the theoretical arrival time, integer microseconds)
-- ARGV[1]  limit: requests per period, >= 1
-- ARGV[2]  period in microseconds, >= 1
-- ARGV[3]  cost, >= 0 (0 reads the state without spending)
-- ARGV[4]  optional: now in UNIX microseconds; absent or "" uses Redis TIME, one clock
--          for every worker
--
-- Returns {allowed (0/1), limit, remaining, reset_after_us, retry_after_us}.
-- Every number stays an integer below 2^53, so Lua's doubles compute exactly what the
-- Rust integer code computes.
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now
if ARGV[4] ~= nil and ARGV[4] ~= "" then
  now = tonumber(ARGV[4])
else
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local interval = math.max(math.floor(period / limit), 1)
local burst = interval * limit
local tat = tonumber(redis.call("GET", KEYS[1])) or now
if tat < now then
  tat = now
end
local new_tat = tat + interval * cost
local allow_at = new_tat - burst

if now < allow_at then
  local remaining = math.floor(math.max(now - (tat - burst), 0) / interval)
  return {0, limit, remaining, tat - now, allow_at - now}
end

if cost > 0 then
  local ttl_ms = math.max(math.ceil((new_tat - now) / 1000), 1)
  redis.call("SET", KEYS[1], string.format("%.0f", new_tat), "PX", ttl_ms)
end
local remaining = math.floor(math.max(now - allow_at, 0) / interval)
return {1, limit, remaining, new_tat - now, 0}
