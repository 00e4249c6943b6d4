// A Fission Node function, unchanged: GET /fn/fission-hello
module.exports = async (context) => {
  return { status: 200, body: `hello, world! (${context.request.method})\n` };
};
