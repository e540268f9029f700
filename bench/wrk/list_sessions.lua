-- A learner's session list: GET /courses/{courseId}/sessions?limit=50 for each (user, course) row in turn.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
common.scenario(function(row) return common.get("/courses/" .. row[2] .. "/sessions?limit=50", row[1]) end, true)
