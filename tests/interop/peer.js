// A Stage7 peer as the TypeScript services wrote it, with amqplib: the
// seed's queue layout, correlationId and replyTo as AMQP properties, JSON
// bodies. Used by tests/interop.rs.
//
//   node peer.js serve ID TYPE            consume {type}-{id}; answer requests; print READY
//   node peer.js call RECIPIENT JSON      one request over direct reply-to; print the reply
//   node peer.js send RECIPIENT JSON      one event; print SENT once confirmed
'use strict';

const amqp = require('amqplib');
const crypto = require('crypto');

const url = process.env.RABBITMQ_URL || 'amqp://guest:guest@127.0.0.1:5672/%2f';
const exchange = 'stage7';

async function serve(id, type) {
  const connection = await amqp.connect(url);
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

async function call(recipient, content) {
  const connection = await amqp.connect(url);
  const channel = await connection.createChannel();
  const correlationId = crypto.randomUUID();
  const reply = new Promise((resolve) => {
    channel.consume('amq.rabbitmq.reply-to', (msg) => {
      if (msg && msg.properties.correlationId === correlationId) resolve(msg.content.toString());
    }, { noAck: true });
  });
  const message = {
    id: crypto.randomUUID(),
    type: 'request',
    sender: 'node-peer',
    recipient,
    content: JSON.parse(content),
    requiresSync: true,
    timestamp: new Date().toISOString(),
  };
  channel.publish(exchange, `message.${recipient}`, Buffer.from(JSON.stringify(message)), {
    correlationId,
    replyTo: 'amq.rabbitmq.reply-to',
    contentType: 'application/json',
    persistent: true,
  });
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('no reply within 10 s')), 10000);
  });
  console.log(await Promise.race([reply, timeout]));
  clearTimeout(timer);
  await connection.close();
}

async function send(recipient, content) {
  const connection = await amqp.connect(url);
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

const [mode, ...args] = process.argv.slice(2);
const modes = { serve, call, send };
if (!modes[mode]) {
  console.error('usage: node peer.js serve ID TYPE | call RECIPIENT JSON | send RECIPIENT JSON');
  process.exit(2);
}
modes[mode](...args).catch((error) => {
  console.error(`peer failed: ${error.message}`);
  process.exit(1);
});
