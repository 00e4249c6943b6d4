// An OpenWhisk web action: GET /fn/openwhisk-web?name=Ada
function main({ name }) {
  let msg = 'you did not tell me who you are.';
  if (name) msg = `hello ${name}!`;
  return { body: `<html><body><h3>${msg}</h3></body></html>` };
}

exports.main = main;
