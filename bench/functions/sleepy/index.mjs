// Answers after ?ms= milliseconds: a request that holds its slot, so a rate of r req/s
// keeps r × ms / 1000 requests in flight and the autoscaler has something to scale.
export default {
  async fetch(request) {
    const ms = Number(new URL(request.url).searchParams.get('ms') ?? 0);
    if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
    return new Response('ok');
  },
};
