// A Vercel Node.js function, unchanged: GET /fn/vercel-node?name=Ada
interface VercelRequest {
  query: Record<string, string | string[]>;
}
interface VercelResponse {
  status(code: number): VercelResponse;
  json(body: unknown): VercelResponse;
}

export default function handler(req: VercelRequest, res: VercelResponse) {
  const { name = 'World' } = req.query;
  return res.status(200).json({ message: `Hello ${name}!` });
}
