// An Fn Project function, unchanged: POST /fn/fn-hello with {"name":"Ada"}
const fdk = require('@fnproject/fdk');

fdk.handle((input) => {
  let name = 'World';
  if (input.name) name = input.name;
  return { message: `Hello ${name}` };
});
