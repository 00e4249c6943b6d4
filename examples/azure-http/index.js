// Azure Functions v4 HTTP trigger, unchanged: GET /fn/azure-http?name=Ada
const { app } = require('@azure/functions');

app.http('httpTrigger1', {
  methods: ['GET', 'POST'],
  authLevel: 'anonymous',
  handler: async (request, context) => {
    context.log(`Http function processed request for url "${request.url}"`);
    const name = request.query.get('name') || (await request.text()) || 'world';
    return { body: `Hello, ${name}!` };
  },
});
