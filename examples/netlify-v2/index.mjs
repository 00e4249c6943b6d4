// A Netlify function (v2), unchanged: GET /fn/netlify-v2/travel-guide/paris/france
export default async (_req, context) => {
  const { city, country } = context.params;
  return new Response(`Travel guide for ${city}, ${country}`);
};

export const config = { path: '/travel-guide/:city/:country' };
