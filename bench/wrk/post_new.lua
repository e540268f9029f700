-- New sessions: every POST carries a session id never used before, into the (user, course) rows in turn.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
common.scenario(function(row, n) return common.post(row[1], row[2], common.new_session(n), n) end)
