-- New sessions of 200 module results each, the most a session may have.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
common.scenario(function(row, n) return common.post_results(row[1], row[2], common.new_session(n), n, 200) end)
