local M = {}
function M.run()
  local x = = 1
end
return M
