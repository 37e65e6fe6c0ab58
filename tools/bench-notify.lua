-- The load script of `ledger-bench system` (wrk): each thread posts the signed notifications of its share of
-- the bodies file, one per line, in order, so every request is a distinct first callback for a created order.
-- Arguments after `--`: the bodies file and the thread count. Prints one RESULT line that the benchmark parses.

local threads = {}
local counter = 0

function setup(thread)
    thread:set("id", counter)
    counter = counter + 1
    table.insert(threads, thread)
end

function init(args)
    local path, count = args[1], tonumber(args[2])
    bodies = {}
    local index = 0
    for line in io.lines(path) do
        if index % count == id then bodies[#bodies + 1] = line end
        index = index + 1
    end
    if #bodies == 0 then error("thread " .. id .. " has no notification bodies: raise --callback-orders") end
    position = 1
    repeated = 0
    wrapped = false
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

function request()
    if position > #bodies then
        position = 1
        wrapped = true
    end
    local body = bodies[position]
    position = position + 1
    -- Every request after the first wrap repeats a notification already sent.
    if wrapped then repeated = repeated + 1 end
    return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
    local again = 0
    for _, thread in ipairs(threads) do again = again + (thread:get("repeated") or 0) end
    local errors = summary.errors
    io.write(string.format(
        "RESULT requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d p999_us=%d max_us=%d repeated=%d\n",
        summary.requests, summary.duration, errors.connect, errors.read, errors.write, errors.status, errors.timeout,
        latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max, again))
end
