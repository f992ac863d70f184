// MQTT.js (v5) round trip over WebSocket: connect to the URL given as the first argument,
// subscribe to a topic, publish to it, print what arrives and exit 0. Every step is bounded by a
// deadline (MQTTJS_DEADLINE_MS, default 10000); any error exits 1 with a message. Used by
// tests/interop/test_security_websocket.py.
//
//   node roundtrip.js ws://127.0.0.1:PORT/mqtt [topic] [protocolVersion: 4|5]
"use strict";

const mqtt = require("mqtt");

const url = process.argv[2];
const topic = process.argv[3] || "mqttjs/roundtrip";
const protocolVersion = Number(process.argv[4] || 4);
const payload = `hello from MQTT.js over ${new URL(url).protocol.replace(":", "")}`;
const DEADLINE_MS = Number(process.env.MQTTJS_DEADLINE_MS || 10000);

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

if (!url) fail("usage: node roundtrip.js URL [topic] [protocolVersion]");

const timer = setTimeout(() => fail(`no round trip within ${DEADLINE_MS} ms`), DEADLINE_MS);

const client = mqtt.connect(url, {
  clientId: `mqttjs-${process.pid}`,
  protocolVersion,
  reconnectPeriod: 0, // one attempt: a refused connection is an error, not a retry loop
  connectTimeout: DEADLINE_MS,
});

client.on("error", (err) => {
  // Once the message is in, DISCONNECT is sent and the broker may close first (the TLS
  // close_notify after it then meets EPIPE): not a failure of the round trip.
  if (!client.__done) fail(`client error: ${err.message}`);
});
client.on("close", () => {
  if (!client.__done) fail("connection closed before the round trip completed");
});

client.on("connect", (connack) => {
  console.log(`CONNACK ${connack.returnCode ?? connack.reasonCode ?? 0}`);
  client.subscribe(topic, { qos: 1 }, (err, granted) => {
    if (err) fail(`subscribe: ${err.message}`);
    console.log(`SUBACK ${granted.map((g) => g.qos).join(",")}`);
    client.publish(topic, payload, { qos: 1 }, (err) => {
      if (err) fail(`publish: ${err.message}`);
    });
  });
});

client.on("message", (t, message, packet) => {
  console.log(`RECEIVED ${t} qos=${packet.qos} ${message.toString()}`);
  client.__done = true;
  clearTimeout(timer);
  client.end(false, () => process.exit(0));
});
