// BullMQ for Node, driven by benchmarks/queue.py (the same marks as peers.py).
//   node bullmq_node.js one N | bulk N | fill N | latency K | worker
// QBENCH_URL, QBENCH_NS from the environment; bullmq is resolved through NODE_PATH
// (queue.py installs it into a cache directory, never into the repository).
"use strict";
const { Queue, Worker } = require("bullmq");
const IORedis = require("ioredis");

const url = process.env.QBENCH_URL;
const ns = process.env.QBENCH_NS;
const connection = () => new IORedis(url, { maxRetriesPerRequest: null });
const now = () => Number(process.hrtime.bigint()) / 1e9;
const wall = () => Date.now() / 1000;

async function main() {
  const [mode, arg] = process.argv.slice(2);
  const n = Number(arg || 0);
  if (mode === "worker") {
    const marks = connection();
    const worker = new Worker(ns, async (job) => {
      const i = job.data.i;
      if (i >= 0 && i < 1e9) return;
      if (i === -1) await marks.set(`${ns}:first`, String(wall()));
      else if (i === -2) await marks.rpush(`${ns}:end`, String(wall()));
      else await marks.rpush(`${ns}:lat`, String(wall() - i));
    }, { connection: connection(), concurrency: 50 });
    const stop = async () => { await worker.close(); await marks.quit(); process.exit(0); };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
    return;
  }
  const queue = new Queue(ns, { connection: connection() });
  const out = {};
  if (mode === "one") {
    const began = now();
    for (let i = 0; i < n; i++) await queue.add("noop", { i });
    out.rate = n / (now() - began);
  } else if (mode === "bulk" || mode === "fill") {
    if (mode === "fill") await queue.add("noop", { i: -1 });
    const began = now();
    for (let start = 0; start < n; start += 1000) {
      const jobs = [];
      for (let i = start; i < Math.min(n, start + 1000); i++) jobs.push({ name: "noop", data: { i } });
      await queue.addBulk(jobs);
    }
    out.rate = n / (now() - began);
    if (mode === "fill") await queue.add("noop", { i: -2 });
  } else if (mode === "latency") {
    const waiter = connection();
    out.latencies = [];
    for (let k = 0; k < n; k++) {
      await queue.add("noop", { i: wall() });
      const reply = await waiter.blpop(`${ns}:lat`, 10);
      if (reply) out.latencies.push(Number(reply[1]));
    }
    await waiter.quit();
  }
  await queue.close();
  console.log(JSON.stringify(out));
  process.exit(0);
}

main().catch((err) => { console.error(err); process.exit(1); });
