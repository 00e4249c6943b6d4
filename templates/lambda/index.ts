// An AWS Lambda style function: HTTP requests arrive as API Gateway payload 2.0 events.
interface HttpEvent {
  rawPath: string;
  queryStringParameters?: Record<string, string>;
  body?: string;
}

export const handler = async (event: HttpEvent, context: { awsRequestId: string }) => {
  const who = event.queryStringParameters?.name ?? 'world';
  console.log(`greeting ${who}`);
  return {
    statusCode: 200,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ message: `Hello, ${who}!`, function: '{{name}}', requestId: context.awsRequestId }),
  };
};
