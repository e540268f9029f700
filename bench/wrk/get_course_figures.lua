-- Cached course-wide figures: GET /admin/courses/{courseId} with an admin's token, for each (course, token) row.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
common.scenario(common.course_figures, true)
