// AWS Lambda style with an API Gateway payload 2.0 event.
export const handler = async (event: { rawPath: string; requestContext: { http: { method: string } } }) => ({
  statusCode: 200,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ message: 'Hello from a Lambda handler', method: event.requestContext.http.method, path: event.rawPath }),
});
