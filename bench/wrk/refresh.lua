-- Access tokens renewed: POST /auth/refresh with each learner's refresh token in turn.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
common.scenario(function(row) return common.refresh(row[1]) end, true)
