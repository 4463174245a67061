-- examples/dovecot-proxy/freeze.lua — passdb 2 of dovecot-proxy.conf: refuse a frozen account
-- with a temporary error, unless the freeze carries a deadline that has passed.
--
-- mailshard writes mailAccountStatus = "frozen", or "frozen;" and fields: "move=ID" (the move
-- that froze it, [freeze] owner_in_value) and, with [freeze] until_in_value = true,
-- "until=YYYYMMDDTHHMMSSZ" (UTC), as in "frozen;move=42.9f3a1c2b;until=20261205T013000Z".
-- A deadline lets logins in again on their own if the mover and its freeze guard both die;
-- mailshard resume settles the move later. A deadline that does not parse, or a field mailshard
-- does not write, keeps the account frozen: never let a user in by mistake during a move.

-- Seconds since the epoch of "YYYYMMDDTHHMMSSZ" (UTC), or nil.
local function utc_seconds(s)
  local y, mo, d, h, mi, se = s:match("^(%d%d%d%d)(%d%d)(%d%d)[Tt](%d%d)(%d%d)(%d%d)[Zz]$")
  if not y then return nil end
  y, mo = tonumber(y), tonumber(mo)
  -- Days from the civil date (Howard Hinnant's algorithm): no os.time, which reads local time.
  if mo <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local mp = (mo + 9) % 12
  local doy = (153 * mp + 2) // 5 + tonumber(d) - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(se)
end

function auth_passdb_lookup(req)
  local value = req:var_expand("%{passdb:mailshard_freeze}"):lower()
  local deadline, known = nil, value:sub(1, 7) == "frozen;"
  for field in value:gmatch(";([^;]*)") do
    local key, val = field:match("^(%a+)=(.*)$")
    if key == "until" then
      deadline = utc_seconds(val)
    elseif key ~= "move" then
      known = false
    end
  end
  if known then
    if deadline and os.time() >= deadline then
      req:log_info("freeze of " .. req.user .. " expired (" .. value .. "): routing it")
      -- Not an error: the store passdbs after this one decide.
      return dovecot.auth.PASSDB_RESULT_USER_UNKNOWN, "freeze expired"
    end
  end
  return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "account frozen by mailshard: " .. value
end
