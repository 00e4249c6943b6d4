// Streams the request body straight back: POST /fn/echo with any body.
export default {
  async fetch(request: Request): Promise<Response> {
    console.log(`echo ${request.method} ${new URL(request.url).pathname}`);
    return new Response(request.body, {
      headers: { 'content-type': request.headers.get('content-type') ?? 'application/octet-stream' },
    });
  },
};
