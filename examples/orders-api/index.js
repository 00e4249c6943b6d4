// A producer (Workers style): POST /fn/orders-api with {"id": "A1", "item": "book"}
// publishes the order to the "orders" topic and answers 202 at once; orders-worker
// stores it. GET /fn/orders-api lists the stored orders.
export default {
  async fetch(request, env) {
    if (request.method === 'POST') {
      const order = await request.json();
      if (typeof order?.id !== 'string') return Response.json({ error: 'an order needs a string "id"' }, { status: 400 });
      await env.ORDERS.send(order);
      return Response.json({ queued: order.id }, { status: 202 });
    }
    const { keys } = await env.DB.list({ prefix: 'order:' });
    const orders = await Promise.all(keys.map((k) => env.DB.get(k.name, 'json')));
    return Response.json({ orders });
  },
};
