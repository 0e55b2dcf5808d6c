-- gateway_bench.lua - wrk script: requests carry the bearer tokens of N
-- users, one per line in the file given after --, followed by wrk's
-- thread count. The users are dealt out between the threads (thread k
-- takes every T-th token from the k-th), and each thread cycles through
-- its own in order: two requests in flight share a user only when one is
-- still unanswered a whole cycle later. (Before, every thread cycled
-- through all N from the same start, so each user was asked for by two
-- connections at once and the gateway's coalescing of identical reads
-- answered about half of them.) gateway_bench.sh prints how many requests
-- did reach store-svc.
--   wrk -t T ... -s bench/gateway_bench.lua <url> -- <tokens-file> T
-- Requests are formatted once in init, so the client spends its time
-- sending, not building strings.
local count = 0
local reqs = {}
local i = 0

function setup(thread)
    thread:set("index", count)
    count = count + 1
end

function init(args)
    local all = {}
    local nthreads = tonumber(args[2]) or 1
    for line in io.lines(args[1]) do
        all[#all + 1] = line
    end
    for j = index + 1, #all, nthreads do
        reqs[#reqs + 1] = wrk.format(nil, nil, {Authorization = "Bearer " .. all[j]})
    end
end

function request()
    i = i % #reqs + 1
    return reqs[i]
end
