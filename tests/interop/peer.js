// A Stage7 peer as the TypeScript services wrote it, with amqplib: the
// seed's queue layout, correlationId and replyTo as AMQP properties, JSON
// bodies. Used by tests/interop.rs and `stage7 bench amqp-node`.
//
//   node peer.js serve ID TYPE            consume {type}-{id}; answer requests; print READY
//   node peer.js call RECIPIENT JSON      one request over direct reply-to; print the reply
//   node peer.js send RECIPIENT JSON      one event; print SENT once confirmed
//   node peer.js bench RECIPIENT N C W    W untimed requests, then N timed, C in flight,
//                                         on one channel; print the elapsed ms, then each
//                                         call's latency in µs; no reply in 30 s fails
'use strict';

const amqp = require('amqplib');
const crypto = require('crypto');

const url = process.env.RABBITMQ_URL || 'amqp://guest:guest@127.0.0.1:5672/%2f';
// TCP_NODELAY: without it small frames wait for delayed acknowledgements
// (~40 ms a round trip). The seed leaves it off (amqplib's default);
// STAGE7_PEER_NODELAY=0 does the same here.
const socketOptions = { noDelay: process.env.STAGE7_PEER_NODELAY !== '0' };
const exchange = 'stage7';

async function serve(id, type) {
  const connection = await amqp.connect(url, socketOptions);
  const channel = await connection.createChannel();
  await channel.assertExchange(exchange, 'topic', { durable: true });
  const queue = `${type.toLowerCase()}-${id}`;
  await channel.assertQueue(queue, { durable: true, arguments: { 'x-expires': 60000 } });
  await channel.bindQueue(queue, exchange, `message.${id}`);
  await channel.bindQueue(queue, exchange, `message.${type.toLowerCase()}`);
  await channel.bindQueue(queue, exchange, 'message.all');
  await channel.consume(queue, (msg) => {
    if (!msg) return;
    const message = JSON.parse(msg.content.toString());
    const { replyTo, correlationId } = msg.properties;
    if (replyTo) {
      const reply = {
        id: crypto.randomUUID(),
        type: 'response',
        sender: id,
        recipient: message.sender,
        content: { echo: message.content, by: 'amqplib' },
        timestamp: new Date().toISOString(),
      };
      channel.sendToQueue(replyTo, Buffer.from(JSON.stringify(reply)), {
        correlationId,
        contentType: 'application/json',
      });
    } else {
      console.log(`EVENT ${JSON.stringify(message)}`);
    }
    channel.ack(msg);
  });
  console.log('READY');
}

// A request as the seed sends one: correlationId and replyTo as AMQP
// properties, a persistent JSON body.
function publishRequest(channel, sender, recipient, content, correlationId) {
  const message = {
    id: crypto.randomUUID(),
    type: 'request',
    sender,
    recipient,
    content,
    requiresSync: true,
    timestamp: new Date().toISOString(),
  };
  channel.publish(exchange, `message.${recipient}`, Buffer.from(JSON.stringify(message)), {
    correlationId,
    replyTo: 'amq.rabbitmq.reply-to',
    contentType: 'application/json',
    persistent: true,
  });
}

async function call(recipient, content) {
  const connection = await amqp.connect(url, socketOptions);
  const channel = await connection.createChannel();
  const correlationId = crypto.randomUUID();
  const reply = new Promise((resolve) => {
    channel.consume('amq.rabbitmq.reply-to', (msg) => {
      if (msg && msg.properties.correlationId === correlationId) resolve(msg.content.toString());
    }, { noAck: true });
  });
  publishRequest(channel, 'node-peer', recipient, JSON.parse(content), correlationId);
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('no reply within 10 s')), 10000);
  });
  console.log(await Promise.race([reply, timeout]));
  clearTimeout(timer);
  await connection.close();
}

async function send(recipient, content) {
  const connection = await amqp.connect(url, socketOptions);
  const channel = await connection.createConfirmChannel();
  const message = {
    id: crypto.randomUUID(),
    type: 'statement',
    sender: 'node-peer',
    recipient,
    content: JSON.parse(content),
  };
  channel.publish(exchange, `message.${recipient}`, Buffer.from(JSON.stringify(message)), {
    contentType: 'application/json',
    persistent: true,
  });
  await channel.waitForConfirms();
  console.log(`SENT ${message.id}`);
  await connection.close();
}

// A load run as a well-behaved amqplib client makes it: one channel, one
// reply consumer, a correlation map, persistent requests. `warmup` untimed
// calls first, on the same connection.
async function bench(recipient, total, inFlight, warmup) {
  const concurrency = Number(inFlight);
  const connection = await amqp.connect(url, socketOptions);
  const channel = await connection.createChannel();
  const waiting = new Map();
  await channel.consume('amq.rabbitmq.reply-to', (msg) => {
    const done = msg && waiting.get(msg.properties.correlationId);
    if (done) {
      waiting.delete(msg.properties.correlationId);
      done(msg.content);
    }
  }, { noAck: true });
  const request = async () => {
    const started = process.hrtime.bigint();
    const correlationId = crypto.randomUUID();
    let timer;
    const reply = new Promise((resolve, reject) => {
      waiting.set(correlationId, resolve);
      timer = setTimeout(() => reject(new Error('no reply within 30 s')), 30000);
    });
    const content = { prompt: 'summarise the mission status', step: 7, tags: ['bench', 'rpc'] };
    publishRequest(channel, 'node-bench', recipient, content, correlationId);
    const answer = JSON.parse((await reply).toString());
    clearTimeout(timer);
    if (answer.type !== 'response') throw new Error(`unexpected reply ${answer.type}`);
    return Number((process.hrtime.bigint() - started) / 1000n);
  };
  const run = async (n) => {
    const latencies = new Array(n);
    let next = 0;
    const worker = async () => {
      while (next < n) {
        const i = next++;
        latencies[i] = await request();
      }
    };
    const started = process.hrtime.bigint();
    await Promise.all(Array.from({ length: concurrency }, worker));
    return { elapsedMs: Number(process.hrtime.bigint() - started) / 1e6, latencies };
  };
  await run(Number(warmup || 0));
  const { elapsedMs, latencies } = await run(Number(total));
  console.log(`ELAPSED ${elapsedMs}`);
  console.log(latencies.join('\n'));
  await connection.close();
}

const [mode, ...args] = process.argv.slice(2);
const modes = { serve, call, send, bench };
if (!modes[mode]) {
  console.error('usage: node peer.js serve ID TYPE | call RECIPIENT JSON | send RECIPIENT JSON | bench RECIPIENT N C W');
  process.exit(2);
}
modes[mode](...args).catch((error) => {
  console.error(`peer failed: ${error.message}`);
  process.exit(1);
});
