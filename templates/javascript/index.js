// A Web-standard function: export default { fetch(request, env, ctx) }.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const who = url.searchParams.get('name') ?? env.GREETING_TARGET ?? 'world';
    console.log(`greeting ${who}`);
    return Response.json({ message: `Hello, ${who}!`, function: '{{name}}' });
  },
};
