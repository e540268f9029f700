-- New sessions of 20 module results each (the typical session), their summary derived from them.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
common.scenario(function(row, n) return common.post_results(row[1], row[2], common.new_session(n), n, 20) end)
