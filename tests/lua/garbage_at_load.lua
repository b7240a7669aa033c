-- Its top level makes far more garbage than the entry's memory limit while
-- the state is being set up (the collector is stopped then): the limit
-- still holds and the garbage is collected, so it loads and runs.
for _ = 1, 200 do
  local _big = string.rep("x", 100000)
end

local M = {}

function M.run() end

return M
