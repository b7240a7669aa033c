-- Pings a Lua echo process `rounds` times, one at a time, then tells `sink`.
local function run(args)
  local echo = process.spawn("b:lecho", "b:host")
  local inbox = process.inbox()
  for _ = 1, args.rounds do
    process.send(echo, "ping", 1)
    inbox:receive()
  end
  process.send("sink", "done", 1)
end
return { run = run }
