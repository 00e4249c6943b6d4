// A Knative function (faas-js-runtime), unchanged: GET /fn/knative-http?a=1
const handle = async (context, body) => {
  return { query: context.query, method: context.method, body };
};

module.exports = { handle };
