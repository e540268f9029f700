-- Cached course aggregates with a bearer token: GET /courses/{courseId} for each (user, course, token) row.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
common.scenario(function(row) return common.get_bearer("/courses/" .. row[2], row[3]) end, true)
