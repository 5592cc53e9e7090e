// A Gearbox producer in Node.js, written from docs/wire.md alone.
//
//   NATS_URL=nats://127.0.0.1:4222 MODEL=demo FEATURES=64 JOBS=10 node producer.mjs
//
// It publishes JOBS jobs to gearbox.jobs.<MODEL> through JetStream, msgpack
// encoded (the default), each with a Nats-Msg-Id equal to its id so a
// re-published job is dropped by the stream. The input goes as
// `input.values`, an array of numbers; `data` would have to be msgpack bin
// (a Uint8Array) of little-endian float32s. The last job is JSON, and asks
// for its result on a reply inbox as well: the script waits for that reply
// and prints it.
import { connect, headers, createInbox, JSONCodec } from "nats";
import { encode, decode } from "@msgpack/msgpack";

const url = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const model = process.env.MODEL ?? "demo";
const features = Number(process.env.FEATURES ?? 64);
const jobs = Number(process.env.JOBS ?? 10);
const prefix = process.env.PREFIX ?? "gearbox";

const nc = await connect({ servers: url });
const js = nc.jetstream();

function input(seed, rows) {
  const values = [];
  for (let i = 0; i < rows * features; i++) values.push(Math.sin(seed * 7.1 + i) / 2);
  return { shape: [rows, features], values };
}

for (let i = 0; i < jobs - 1; i++) {
  const id = `node-${i}`;
  const job = { id, model, input: input(i, 1 + (i % 3)), meta: { from: "node" } };
  const h = headers();
  h.set("Content-Type", "application/msgpack");
  const ack = await js.publish(`${prefix}.jobs.${model}`, encode(job), { msgID: id, headers: h });
  if (ack.duplicate) console.error(`${id}: already queued`);
}

// The last job: JSON, with a reply inbox.
const id = `node-${jobs - 1}`;
const inbox = createInbox();
const sub = nc.subscribe(inbox, { max: 1 });
const h = headers();
h.set("Content-Type", "application/json");
const job = { id, model, precision: "auto", input: input(jobs - 1, 2), reply_to: inbox };
await js.publish(`${prefix}.jobs.${model}`, JSONCodec().encode(job), { msgID: id, headers: h });
for await (const m of sub) {
  const json = (m.headers?.get("Content-Type") ?? "").startsWith("application/json");
  const r = json ? JSONCodec().decode(m.data) : decode(m.data);
  if (r.error) {
    console.error(`${r.id}: ${r.error.code}: ${r.error.message}`);
    process.exitCode = 1;
  } else {
    console.log(`reply ${r.id}: precision ${r.precision}, output shape ${JSON.stringify(r.output.shape)}`);
  }
}
await nc.drain();
