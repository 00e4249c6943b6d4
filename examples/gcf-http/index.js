// A Google Cloud Functions HTTP function, unchanged: GET /fn/gcf-http?name=Ada
exports.helloHttp = (req, res) => {
  res.send(`Hello ${req.query.name || req.body?.name || 'World'}!`);
};
