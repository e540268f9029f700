-- Re-posts of a fixed set of existing sessions: each session alternates new values and
-- an exact repeat of them (a client retry), as repost_counter() in bench/traffic.py.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
common.scenario(function(row, n, count)
  return common.post(row[1], row[2], row[3], math.floor(n / count / 2))
end)
