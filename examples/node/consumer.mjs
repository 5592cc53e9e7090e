// A Gearbox result consumer in Node.js, written from docs/wire.md alone.
//
//   NATS_URL=nats://127.0.0.1:4222 MODEL=demo COUNT=10 node consumer.mjs
//
// It reads the result stream (GEARBOX_RESULTS, subject
// gearbox.results.<MODEL>) from its start with an ordered consumer, decodes
// each result in the encoding its Content-Type names (msgpack unless
// application/json), and prints one line per result until COUNT have come.
// A msgpack result's output is {dtype: "f32", shape: [rows, outputs],
// data: bin}: little-endian float32s, read here with a DataView. It exits
// non-zero if any result carries an error.
import { connect, JSONCodec } from "nats";
import { decode } from "@msgpack/msgpack";

const url = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const model = process.env.MODEL ?? "demo";
const count = Number(process.env.COUNT ?? 10);
const prefix = process.env.PREFIX ?? "gearbox";
const stream = prefix.toUpperCase().replaceAll(".", "_").replaceAll("-", "_") + "_RESULTS";

function floats(t) {
  if (t.values) return t.values; // JSON results carry values ("NaN", "Infinity" for overflows)
  const dv = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const out = [];
  for (let i = 0; i < t.data.byteLength; i += 4) out.push(dv.getFloat32(i, true));
  return out;
}

const nc = await connect({ servers: url });
const js = nc.jetstream();
const consumer = await js.consumers.get(stream, { filterSubjects: [`${prefix}.results.${model}`] });
const messages = await consumer.consume();
let seen = 0;
let failed = 0;
for await (const m of messages) {
  const json = (m.headers?.get("Content-Type") ?? "").startsWith("application/json");
  const r = json ? JSONCodec().decode(m.data) : decode(m.data);
  if (r.error) {
    failed++;
    console.log(`${r.id}: ${r.error.code}: ${r.error.message}`);
  } else {
    const out = floats(r.output);
    console.log(`${r.id}: ${r.precision} [${r.output.shape}] first ${out[0].toFixed(4)} by ${r.worker}`);
  }
  if (++seen === count) break;
}
await nc.drain();
if (failed > 0) process.exit(1);
