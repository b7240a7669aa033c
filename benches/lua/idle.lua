-- Says it is ready, then waits for one message and ends: idle until then.
local function run()
  process.send("sink", "ready", 1)
  process.inbox():receive()
end
return { run = run }
