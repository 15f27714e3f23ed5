// PeerJS server (npm package `peer`) as a reference point for the signalling benchmark.
//
// Usage: node peerjs_server.js PORT
// Listens on 127.0.0.1 only. The limits that would distort a load test are lifted:
// concurrent_limit (default 5000) and alive_timeout (default 90 s without a HEARTBEAT
// closes the socket; the bench clients send no HEARTBEAT). Everything else is the default.
"use strict";

const { PeerServer } = require("peer");

const port = Number.parseInt(process.argv[2] ?? "", 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error("usage: node peerjs_server.js PORT");
  process.exit(2);
}

PeerServer(
  {
    host: "127.0.0.1",
    port,
    path: "/",
    key: "peerjs",
    proxied: false,
    allow_discovery: false,
    concurrent_limit: 1000000,
    alive_timeout: 24 * 3600 * 1000,
  },
  () => {
    // run.py polls GET / for readiness; this line is for people reading the log.
    console.log(`peerjs listening on 127.0.0.1:${port}`);
  },
);

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => process.exit(0));
}
