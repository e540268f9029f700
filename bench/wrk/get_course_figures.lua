-- Cached course-wide figures: GET /admin/courses/{courseId} with an admin's token, for each (course, token) row.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
common.scenario(function(row) return common.get_bearer("/admin/courses/" .. row[1], row[2]) end, true)
