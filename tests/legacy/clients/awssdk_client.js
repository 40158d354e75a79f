// Legacy client: the AWS SDK for JavaScript v2 (aws-sdk 2.382.0, December 2018), unmodified,
// with only its era's variables.
//
// Usage: node awssdk_client.js STS_ENDPOINT
//
// Resolves credentials through the SDK's default provider chain, then calls
// GetCallerIdentity. aws-sdk v2 of that era has no endpoint variable, so the STS endpoint is
// passed the way its users did it: the `endpoint` option of the client.
// Prints one JSON line: {ok: true, arn, provider, access_key, versions} or
// {ok: false, error, message, versions}; exit 0 / 1.
'use strict';

const path = require('path');
const AWS = require(path.join(__dirname, '..', 'node', 'node_modules', 'aws-sdk'));

const versions = { 'aws-sdk': AWS.VERSION, node: process.version };

function done(result) {
  process.stdout.write(JSON.stringify(Object.assign(result, { versions })) + '\n');
  process.exitCode = result.ok ? 0 : 1;
}

const chain = new AWS.CredentialProviderChain();
chain.resolve((err, credentials) => {
  if (err) {
    // The chain reports only its last provider's error; when the container variables are
    // set, ask the container provider alone too, for the reason a user would look for.
    const result = { ok: false, error: err.code || err.name, message: String(err.message) };
    if (process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI || process.env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI) {
      new AWS.RemoteCredentials().refresh((e) => {
        result.container_error = e ? `${e.code || e.name}: ${e.message} (status ${e.statusCode})` : 'none';
        done(result);
      });
      return;
    }
    done(result);
    return;
  }
  const sts = new AWS.STS({
    endpoint: process.argv[2],
    region: process.env.AWS_REGION || 'us-east-1',
    credentials,
    maxRetries: 0,
  });
  sts.getCallerIdentity({}, (e, data) => {
    if (e) {
      done({ ok: false, error: e.code || e.name, message: String(e.message) });
      return;
    }
    done({
      ok: true,
      arn: data.Arn,
      provider: credentials.constructor.name,
      access_key: credentials.accessKeyId,
    });
  });
});
