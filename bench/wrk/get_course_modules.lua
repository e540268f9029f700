-- Cached course-wide breakdowns: GET /admin/courses/{courseId}/modules with an admin's token.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
common.scenario(function(row) return common.get_bearer("/admin/courses/" .. row[1] .. "/modules", row[2]) end, true)
