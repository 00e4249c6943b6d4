// A Web-standard function: export default { fetch(request, env, ctx) }.
// Deploy with `nimbus deploy {{name}}`, call with `nimbus invoke {{name}}`.
export default {
  async fetch(request: Request, env: Record<string, string>): Promise<Response> {
    const url = new URL(request.url);
    const who = url.searchParams.get('name') ?? env.GREETING_TARGET ?? 'world';
    console.log(`greeting ${who}`);
    return Response.json({ message: `Hello, ${who}!`, function: '{{name}}' });
  },
};
