-- gateway_bench.lua - wrk script: each request carries the bearer token of
-- the next of N users (one token per line in the file given after --), so
-- no two requests in a row share a user and the gateway's coalescing of
-- identical reads cannot help: every request costs a bus round trip.
--   wrk ... -s bench/gateway_bench.lua <url> -- <tokens-file>
-- Requests are formatted once in init, so the client spends its time
-- sending, not building strings.
local reqs = {}
local i = 0

function init(args)
    for line in io.lines(args[1]) do
        reqs[#reqs + 1] = wrk.format(nil, nil, {Authorization = "Bearer " .. line})
    end
    i = math.random(#reqs)
end

function request()
    i = i % #reqs + 1
    return reqs[i]
end
