-- Shared by the scenario scripts: data rows, requests, unique ids and the JSON summary.
-- Each script is run as: wrk -s SCRIPT URL -- DATA_FILE RUN_ID
-- Request values follow bench/traffic.py, which builds the same streams for the fixed-rate runs.
local M = {}
local threads = 0

-- One row per line, fields separated by spaces.
function M.rows(path)
  local rows = {}
  for line in io.lines(path) do
    local row = {}
    for field in line:gmatch("%S+") do row[#row + 1] = field end
    if #row > 0 then rows[#rows + 1] = row end
  end
  return rows
end

function M.get(path, user)
  return wrk.format("GET", path, { ["X-User-Id"] = user })
end

-- As a learner's app sends it: the learner is the bearer token's subject.
function M.get_bearer(path, token)
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
end

-- One session's JSON with the n-th post's values: as session_body() in bench/traffic.py.
function M.post_body(session, n)
  return string.format(
    '{"sessionId":"%s","totalModulesStudied":%d,"averageScore":%d.%02d,"timeStudied":%d}',
    session, n % 50, n % 100, n % 97, 60000 + (n % 1000) * 1000)
end

-- The n-th post's values: as post_request() in bench/traffic.py.
function M.post(user, course, session, n)
  return wrk.format("POST", "/courses/" .. course,
    { ["X-User-Id"] = user, ["Content-Type"] = "application/json" }, M.post_body(session, n))
end

-- Types that generated results name: as MODULE_TYPES in bench/datagen.py.
M.MODULE_TYPES = { "video", "reading", "quiz", "exercise", "lab", "project" }

-- A session of count module results of the n-th post, its summary left to follow from them:
-- as results_body() in bench/traffic.py.
function M.results_body(session, n, count)
  local results = {}
  for index = 0, count - 1 do
    local k = n + index
    results[#results + 1] = string.format('{"moduleType":"%s","score":%d.%02d,"timeStudied":%d}',
      M.MODULE_TYPES[k % #M.MODULE_TYPES + 1], k % 100, k % 97, 1000 + (k % 400) * 1000)
  end
  return '{"sessionId":"' .. session .. '","modules":[' .. table.concat(results, ",") .. ']}'
end

function M.post_results(user, course, session, n, count)
  return wrk.format("POST", "/courses/" .. course,
    { ["X-User-Id"] = user, ["Content-Type"] = "application/json" }, M.results_body(session, n, count))
end

-- Sessions per batch request: as BATCH_SESSIONS in bench/traffic.py.
M.BATCH_SESSIONS = 20

-- The n-th offline sync: BATCH_SESSIONS new sessions in one request, as batch_request() in bench/traffic.py.
function M.batch(user, course, n)
  local items = {}
  for item = 0, M.BATCH_SESSIONS - 1 do
    local counter = n * M.BATCH_SESSIONS + item
    items[#items + 1] = M.post_body(M.new_session(counter), counter)
  end
  return wrk.format("POST", "/courses/" .. course .. "/sessions/batch",
    { ["X-User-Id"] = user, ["Content-Type"] = "application/json" },
    '{"sessions":[' .. table.concat(items, ",") .. ']}')
end

-- A course's cached figures, with the token of the row (course, token): an admin's or its teacher's.
function M.course_figures(row)
  return M.get_bearer("/admin/courses/" .. row[1], row[2])
end

-- As a learner's app renews its access token: as refresh_request() in bench/traffic.py.
function M.refresh(token)
  return wrk.format("POST", "/auth/refresh", { ["Content-Type"] = "application/json" },
    '{"refreshToken":"' .. token .. '"}')
end

-- Unique per run, thread and request: as new_session_id() in bench/traffic.py.
function M.new_session(n)
  return string.format("%s-%04x-4000-8000-%012x", M.run_id, thread_id, n)
end

function M.setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

function M.report(summary, latency)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end

-- Installs wrk's hooks: the n-th request (from 0) is build(row, n, #rows) for the rows in turn.
-- With cached, each row's request is built once (for requests that never change).
function M.scenario(build, cached)
  local rows, built, n = {}, {}, 0
  setup, done = M.setup, M.report
  init = function(args)
    rows, M.run_id = M.rows(args[1]), args[2]
    if cached then
      for i, row in ipairs(rows) do built[i] = build(row, i - 1, #rows) end
    end
  end
  request = function()
    local i = n % #rows + 1
    local req = cached and built[i] or build(rows[i], n, #rows)
    n = n + 1
    return req
  end
end

return M
