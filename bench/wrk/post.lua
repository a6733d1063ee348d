-- POST /api/todos with a small valid JSON body (expects 201 each time).
-- The harness puts this folder on LUA_PATH, so the summary line comes from summary.lua.
require "summary"

wrk.method = "POST"
wrk.body = '{"title": "bench todo", "done": false}'
wrk.headers["Content-Type"] = "application/json"
