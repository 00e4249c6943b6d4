// A topic subscriber (Workers style): queue() gets batches of orders published to
// "orders" and stores each one. A message that cannot be handled now is retried
// alone (message.retry()); after the function's retries it goes to its dead letters.
export default {
  async queue(batch, env) {
    for (const message of batch.messages) {
      const order = message.body;
      try {
        await env.DB.put(`order:${order.id}`, JSON.stringify({ ...order, storedAt: new Date().toISOString() }));
        message.ack();
      } catch (err) {
        console.error(`order ${order.id} not stored yet: ${err.message}`);
        message.retry({ delaySeconds: 5 });
      }
    }
    console.log(`stored ${batch.messages.length} order(s) from ${batch.queue}`);
  },

  fetch() {
    return new Response('orders-worker consumes the "orders" topic\n');
  },
};
