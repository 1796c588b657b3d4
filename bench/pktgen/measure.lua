-- l4vs benchmark: measure the profile loaded from udp64.pkt, syn.pkt or
-- imix.pkt (pktgen-dpdk Lua script; see README.md).
--
-- Transmits on port 0 for L4VS_SECONDS (default 10) after a 2 s warm-up,
-- reads port 0's TX and port 1's RX counters once a second, prints each
-- second and the average, then stops port 0. Port 1 receives what the
-- director forwarded, so its rate is the director's forwarding rate (for
-- syn.pkt: new connections/s, one SYN per connection created).
--
--   Pktgen:/> load bench/pktgen/udp64.pkt
--   Pktgen:/> script bench/pktgen/measure.lua

local tx_port, rx_port = "0", "1"
local seconds = tonumber(os.getenv("L4VS_SECONDS") or "10") or 10
local warmup_ms = 2000

-- Cumulative packet counters of a port. pktgen 23.x and older return the
-- counters flat in portStats(p, "port")[p]; newer releases nest them under
-- `curr`: accept both.
local function counters(port)
    local all = pktgen.portStats(port, "port")
    local t = all[tonumber(port)]
    local c = t.curr or t
    return c.opackets or 0, c.ipackets or 0, (c.imissed or 0) + (c.rx_nombuf or 0)
end

local function mpps(n, ms)
    return n / (ms / 1000) / 1e6
end

pktgen.clr()
pktgen.start(tx_port)
pktgen.delay(warmup_ms)

local tx0 = counters(tx_port)
local _, rx0, miss0 = counters(rx_port)
local tx_prev, rx_prev = tx0, rx0
print(string.format("l4vs measure: %d s, TX port %s, RX port %s", seconds, tx_port, rx_port))
for s = 1, seconds do
    pktgen.delay(1000)
    local tx = counters(tx_port)
    local _, rx = counters(rx_port)
    print(string.format("  %3d s  TX %8.3f Mpps  RX %8.3f Mpps", s,
        mpps(tx - tx_prev, 1000), mpps(rx - rx_prev, 1000)))
    tx_prev, rx_prev = tx, rx
end
pktgen.stop(tx_port)

local ms = seconds * 1000
local tx_n, rx_n = tx_prev - tx0, rx_prev - rx0
local _, _, miss1 = counters(rx_port)
local loss = 0
if tx_n > 0 then
    loss = (tx_n - rx_n) * 100 / tx_n
end
print(string.format("l4vs result: TX %.3f Mpps, RX (forwarded) %.3f Mpps, loss %.3f %%, RX port missed %d",
    mpps(tx_n, ms), mpps(rx_n, ms), loss, miss1 - miss0))
