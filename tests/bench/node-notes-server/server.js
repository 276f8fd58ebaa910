// The Node.js server of the notes (shared/seed/fmp4-websocket-mse-notes.pt.md),
// as written there, on the `ws` package, for the fan-out benchmark.
//
//   STREAM_PORT=8081 WS_PORT=8080 node server.js
//
// What the notes leave out or get wrong, and the least that makes it run (marked
// "notes:" below):
// - `websocket.broadcast(data)` and `socketServer` are not defined in the notes: a
//   `ws` WebSocketServer and a broadcast that sends to every open client;
// - `new DataView(data)` throws for a Node.js Buffer (it wants an ArrayBuffer), and
//   `offset` is undefined: DataView over the Buffer's bytes, offset 0.
// Everything else is the notes' logic: only the first box of a TCP chunk is looked
// at to catch ftyp and moov, every TCP chunk is broadcast as it came (one binary
// WebSocket message per chunk, no fragment boundaries), and a new viewer gets
// ftyp+moov, then whatever chunk comes next (mid-fragment, mid-GOP).
'use strict';
const net = require('net');
const WebSocket = require('ws');

const STREAM_PORT = Number(process.env.STREAM_PORT || 8081);
const WS_PORT = Number(process.env.WS_PORT || 8080);
const HOST = process.env.HOST || '127.0.0.1';
const MP4_FTYP = 1718909296;
const MP4_MOOV = 1836019574;

// notes: not shown; ws >= 8 has permessage-deflate off by default on the server.
const socketServer = new WebSocket.Server({ host: HOST, port: WS_PORT });
const websocket = {
  broadcast(data) {
    socketServer.clients.forEach((client) => {
      if (client.readyState === WebSocket.OPEN) client.send(data);
    });
  },
};

var ftyp;
var moov;

net.createServer(function (socket) {
  socket.on('data', function (data) {
    if (!moov) {
      // notes: new DataView(data)
      var dataView = new DataView(data.buffer, data.byteOffset, data.byteLength);
      var offset = 0; // notes: undefined

      var len = dataView.getUint32(0);
      var type = dataView.getInt32(4);

      if (type === MP4_FTYP) {
        // notes: new Uint8Array(dataView.buffer.slice(offset, len))
        ftyp = new Uint8Array(data.subarray(offset, len));
      } else if (type === MP4_MOOV) {
        moov = new Uint8Array(data.subarray(offset, len));
      }
    }

    websocket.broadcast(data);
  });

  socket.on('close', function (code, message) {
    ftyp = undefined;
    moov = undefined;
  });
}).listen(STREAM_PORT, HOST);

socketServer.on('connection', function (socket) {
  if (ftyp && moov) {
    var ftyp_moov = new Uint8Array(ftyp.length + moov.length);
    ftyp_moov.set(ftyp, 0);
    ftyp_moov.set(moov, ftyp.length);

    socket.send(ftyp_moov);
  }
});

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
