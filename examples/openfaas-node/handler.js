// An OpenFaaS node template handler, unchanged: POST /fn/openfaas-node with a JSON body.
module.exports = async (event, context) => {
  const result = { status: `You said: ${JSON.stringify(event.body)}`, method: event.method, path: event.path };
  return context.status(200).headers({ 'content-type': 'application/json' }).succeed(result);
};
