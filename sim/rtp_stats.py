"""The RTP statistics chan_pjsip sets on a channel as it hangs up (RTPAUDIOQOS*, h2, h3).
No RTP flows in the simulator: the figures are those of the recordings (no packet loss)."""

from __future__ import annotations

# In the order Asterisk sets them.
RTP_QOS = {
    "RTPAUDIOQOS": "ssrc=1932147697;themssrc=0;lp=0;rxjitter=0.000000;rxcount=0;"
    "txjitter=0.000000;txcount=0;rlp=0;rtt=0.000000;rxmes=0.000000;txmes=0.000000",
    "RTPAUDIOQOSJITTER": "minrxjitter=000.000000;maxrxjitter=000.000000;avgrxjitter=000.000000;"
    "stdevrxjitter=000.000000;mintxjitter=000.000000;maxtxjitter=000.000000;"
    "avgtxjitter=000.000000;stdevtxjitter=000.000000;",
    "RTPAUDIOQOSLOSS": "  minrxlost=000.000000;  maxrxlost=000.000000;  avgrxlost=000.000000;"
    "  stdevrxlost=000.000000;  mintxlost=000.000000;  maxtxlost=000.000000;"
    "  avgtxlost=000.000000;  stdevtxlost=000.000000;",
    "RTPAUDIOQOSRTT": "     minrtt=000.000000;     maxrtt=000.000000;     avgrtt=000.000000;"
    "     stdevrtt=000.000000;",
    "RTPAUDIOQOSMES": "   minrxmes=000.000000;   maxrxmes=000.000000;   avgrxmes=000.000000;"
    "   stdevrxmes=000.000000;   mintxmes=000.000000;   maxtxmes=000.000000;"
    "   avgtxmes=000.000000;   stdevtxmes=000.000000;",
}
