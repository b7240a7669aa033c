-- Answers every message with topic "echo" to its sender; "stop" ends it.
local function run(args)
  if args and args.name then process.registry.register(args.name) end
  local inbox = process.inbox()
  while true do
    local msg = inbox:receive()
    if msg:topic() == "stop" then return "done" end
    if msg:topic() == "fail" then error("asked to fail") end
    process.send(msg:from(), "echo", { topic = msg:topic(), data = msg:payload():data(), me = process.pid() })
  end
end
return { run = run }
