-- Returns at once: one spawn + exit cycle.
return { run = function() end }
