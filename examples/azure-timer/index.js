// Azure Functions v4 timer trigger, unchanged: the NCRONTAB schedule (six fields, with
// seconds) in app.timer() is the function's schedule. The HTTP function beside it
// answers GET /fn/azure-timer.
const { app } = require('@azure/functions');

app.timer('every5min', {
  schedule: '0 */5 * * * *',
  handler: (myTimer, context) => {
    context.log(`timer fired (past due: ${myTimer.isPastDue})`);
  },
});

app.http('status', {
  methods: ['GET'],
  handler: () => ({ body: 'azure-timer runs every five minutes' }),
});
