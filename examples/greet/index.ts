// Web-standard style: GET /fn/greet?name=Ada → {"message":"Hello, Ada!"}
export default {
  async fetch(request: Request): Promise<Response> {
    const name = new URL(request.url).searchParams.get('name') ?? 'world';
    return Response.json({ message: `Hello, ${name}!` });
  },
};
