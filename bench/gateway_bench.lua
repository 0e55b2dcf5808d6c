-- gateway_bench.lua - wrk script: each request carries the bearer token of
-- the next of N users (one token per line in the file given after --), so
-- no two requests in a row share a user and the gateway's coalescing of
-- identical reads cannot help: every request costs a bus round trip.
--   wrk ... -s bench/gateway_bench.lua <url> -- <tokens-file>
local tokens = {}
local i = 0

function init(args)
    for line in io.lines(args[1]) do
        tokens[#tokens + 1] = "Bearer " .. line
    end
    i = math.random(#tokens)
end

function request()
    i = i % #tokens + 1
    return wrk.format(nil, nil, {Authorization = tokens[i]})
end
