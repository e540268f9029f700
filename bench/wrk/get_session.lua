-- One stored session: GET /courses/{courseId}/sessions/{sessionId} for each (user, course, session) row in turn.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
common.scenario(function(row) return common.get("/courses/" .. row[2] .. "/sessions/" .. row[3], row[1]) end, true)
