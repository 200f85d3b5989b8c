// Runs graphql-http's server audit suite against the URL given and prints one JSON array of
// {id, name, status, reason}. Run with NODE_PATH pointing at the npm cache of the tests.
const { serverAudits } = require('graphql-http');

async function main() {
  const url = process.argv[2];
  const audits = serverAudits({ url, fetchFn: fetch });
  const results = [];
  for (const audit of audits) {
    const result = await audit.fn();
    results.push({ id: result.id, name: result.name, status: result.status,
                   reason: result.reason || null });
  }
  process.stdout.write(JSON.stringify(results));
}

main().catch((error) => { console.error(String(error)); process.exit(1); });
