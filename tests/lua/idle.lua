-- Reports its own heap size (after a full collection), then idles.
local function run(args)
  collectgarbage("collect")
  process.send(args.to, "idle", { bytes = math.floor(collectgarbage("count") * 1024) })
  process.inbox():receive()
end
return { run = run }
