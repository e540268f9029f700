-- Cached leaderboards with the learner's place: GET /courses/{courseId}/leaderboard for each (user, course) row.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
common.scenario(function(row) return common.get("/courses/" .. row[2] .. "/leaderboard", row[1]) end, true)
