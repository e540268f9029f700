-- A course's full ranking, first page: GET /admin/courses/{courseId}/leaderboard?limit=50 with an admin's token.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
common.scenario(function(row)
  return common.get_bearer("/admin/courses/" .. row[1] .. "/leaderboard?limit=50", row[2])
end, true)
