-- Cached breakdowns by module type: GET /courses/{courseId}/modules for each (user, course) row.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
common.scenario(function(row) return common.get("/courses/" .. row[2] .. "/modules", row[1]) end, true)
