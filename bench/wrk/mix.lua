-- 90/10 read/write: cached course reads, and every tenth request a new session in the same course.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
common.scenario(function(row, n)
  if n % 10 == 0 then return common.post(row[1], row[2], common.new_session(n), n) end
  return common.get("/courses/" .. row[2], row[1])
end)
