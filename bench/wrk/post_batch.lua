-- Offline syncs: POST /courses/{courseId}/sessions/batch of 20 new sessions, into the (user, course) rows in turn.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
common.scenario(function(row, n) return common.batch(row[1], row[2], n) end)
