#!/usr/bin/env node
// A real OpenID provider for Aion's tests: the npm package `oidc-provider` (v9),
// configured with fixed test clients and accounts. Never a mock: the Rust tests
// talk to it over HTTP exactly as they would to a production identity provider.
//
// Usage:
//   node provider.mjs [--port N] [--issuer-path /prefix] [--redirect-uri URI]...
//
//   --port N           TCP port on 127.0.0.1; 0 (the default) picks a free one.
//   --issuer-path P    serve under a path prefix; the issuer becomes
//                      http://127.0.0.1:PORT/P (discovery at P/.well-known/...).
//   --redirect-uri U   redirect URI of the `aion-web` client; may be repeated.
//                      Also read from AION_TEST_OIDC_REDIRECT_URIS (comma or
//                      space separated). Default http://127.0.0.1:8080/auth/callback.
//                      Loopback URIs match on any port (RFC 8252 §7.3), so a
//                      test server on a random port needs no flag.
//   --ignore-stdin     keep running when stdin closes (for `node provider.mjs &`
//                      in a shell script, whose stdin is /dev/null).
//
// When ready it prints exactly one JSON line on stdout,
//   {"issuer":"http://127.0.0.1:PORT","port":PORT}
// and runs until SIGTERM/SIGINT or until its stdin closes (so a test process that
// dies takes the provider with it). Diagnostics go to stderr only.
//
// See README.md for the clients, accounts and claims.

import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { interactionPolicy } from 'oidc-provider';

// ---------------------------------------------------------------- arguments

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'issuer-path': { type: 'string', default: '' },
    'redirect-uri': { type: 'string', multiple: true, default: [] },
    'ignore-stdin': { type: 'boolean', default: false },
  },
  strict: true,
});

const port = Number.parseInt(args.port, 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`invalid --port ${args.port}`);
  process.exit(2);
}

// "/oidc/" -> "/oidc", "" -> ""
let issuerPath = args['issuer-path'].replace(/\/+$/, '');
if (issuerPath && !issuerPath.startsWith('/')) issuerPath = `/${issuerPath}`;

const redirectUris = [
  ...args['redirect-uri'],
  ...(process.env.AION_TEST_OIDC_REDIRECT_URIS ?? '').split(/[\s,]+/).filter(Boolean),
];
if (redirectUris.length === 0) redirectUris.push('http://127.0.0.1:8080/auth/callback');
// After logout the browser may come back to the site root of each redirect URI.
const postLogoutRedirectUris = [...new Set(redirectUris.map((u) => `${new URL(u).origin}/`))];

// ---------------------------------------------------------------- test data

/** The default audience (resource indicator) of access tokens: Aion's API. */
const API_AUDIENCE = 'https://api.aion.test';

/** People who can log in through the browser (authorization code flow). */
const ACCOUNTS = {
  alice: { email: 'alice@lab.example', name: 'Alice' },
  bob: { email: 'bob@lab.example', name: 'Bob' },
  carol: { email: 'carol@partner.example', name: 'Carol' },
};

/** Profile of an account id; any login works, unknown ones get a generic profile. */
function profile(accountId) {
  return ACCOUNTS[accountId] ?? { email: `${accountId}@lab.example`, name: accountId };
}

/**
 * Machine clients (client_credentials grant). The access token's `sub` is the
 * client id; `email`/`name` come from the account named here.
 */
const CC_CLIENTS = {
  'aion-test-alice': 'alice',
  'aion-test-bob': 'bob',
  'aion-test-carol': 'carol',
  'aion-test-short': 'alice', // access tokens live 1 second (expiry tests)
};
const SHORT_TTL_CLIENT = 'aion-test-short';

const clients = [
  ...Object.keys(CC_CLIENTS).map((clientId) => ({
    client_id: clientId,
    client_secret: 'secret',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_post',
  })),
  // The web console: authorization code + PKCE, confidential (HTTP Basic).
  // `native` only so that loopback redirect URIs match on any port.
  {
    client_id: 'aion-web',
    client_secret: 'secret',
    application_type: 'native',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: redirectUris,
    post_logout_redirect_uris: postLogoutRedirectUris,
    token_endpoint_auth_method: 'client_secret_basic',
  },
  // A public client (no secret, PKCE) for a command-line login.
  {
    client_id: 'aion-cli',
    application_type: 'native',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: redirectUris,
    token_endpoint_auth_method: 'none',
  },
];

// ---------------------------------------------------------------- keys

// A fresh RS256 signing key per process; published at the JWKS endpoint.
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: `test-${crypto.randomBytes(6).toString('hex')}`,
  alg: 'RS256',
  use: 'sig',
};

// ---------------------------------------------------------------- provider

const configuration = {
  clients,
  jwks: { keys: [signingKey] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },

  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  // Put the scope's claims (email, name) into the ID token itself, not only userinfo.
  conformIdTokenClaims: false,

  async findAccount(_ctx, sub) {
    const { email, name } = profile(sub);
    return {
      accountId: sub,
      async claims() {
        return { sub, email, email_verified: true, name, preferred_username: sub };
      },
    };
  },

  // Extra claims in every access token: the profile of the user (auth code flow)
  // or of the account behind a machine client (client_credentials).
  async extraTokenClaims(_ctx, token) {
    const accountId = token.accountId ?? CC_CLIENTS[token.clientId];
    if (!accountId) return undefined;
    const { email, name } = profile(accountId);
    return { email, name };
  },

  // First-party client: no consent screen, the grant is created on login.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile offline_access');
    grant.addOIDCClaims(['email', 'email_verified', 'name', 'preferred_username']);
    grant.addResourceScope(API_AUDIENCE, 'aion');
    await grant.save();
    return grant;
  },

  pkce: { required: () => true },

  // oidc-provider always asks `native` clients for consent; our native clients are
  // first party, so drop that check: login is the only interaction.
  interactions: {
    policy: (() => {
      const policy = interactionPolicy.base();
      policy.get('consent').checks.remove('native_client_prompt');
      return policy;
    })(),
  },

  features: {
    devInteractions: { enabled: true }, // built-in login page: any login, any password
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // client_credentials without `resource` gets a token for Aion's API; the
      // browser flows get an opaque token for userinfo unless they ask.
      async defaultResource(ctx, _client, oneOf) {
        if (oneOf) return oneOf;
        if (ctx.oidc.params?.grant_type === 'client_credentials') return API_AUDIENCE;
        return undefined;
      },
      // Any absolute URI is a resource server whose audience is that URI, so tests
      // can ask for a token meant for someone else (resource=https://other.example).
      async getResourceServerInfo(_ctx, resourceIndicator, _client) {
        return {
          audience: resourceIndicator,
          scope: 'aion',
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
      async useGrantedResource() {
        return true;
      },
    },
  },

  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    ClientCredentials(_ctx, _token, client) {
      return client.clientId === SHORT_TTL_CLIENT ? 1 : 3600;
    },
    Grant: 14 * 24 * 3600,
    IdToken: 3600,
    Interaction: 3600,
    RefreshToken: 14 * 24 * 3600,
    Session: 14 * 24 * 3600,
  },
};

// ---------------------------------------------------------------- serve

const server = http.createServer();
server.listen(port, '127.0.0.1', () => {
  const actualPort = server.address().port;
  const issuer = `http://127.0.0.1:${actualPort}${issuerPath}`;
  const provider = new Provider(issuer, configuration);
  provider.on('server_error', (_ctx, err) => console.error('server_error', err));

  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (issuerPath) {
      // Mount under the issuer path: oidc-provider derives its mount point from
      // originalUrl minus url, as it does behind express/koa-mount.
      const { url } = req;
      if (url !== issuerPath && !url.startsWith(`${issuerPath}/`) && !url.startsWith(`${issuerPath}?`)) {
        res.statusCode = 404;
        res.end();
        return;
      }
      req.originalUrl = url;
      req.url = url.slice(issuerPath.length) || '/';
    }
    callback(req, res);
  });

  process.stdout.write(`${JSON.stringify({ issuer, port: actualPort })}\n`);
});
server.on('error', (err) => {
  console.error(`oidc provider: ${err.message}`);
  process.exit(1);
});

// ---------------------------------------------------------------- shutdown

function shutdown() {
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
// Exit when the parent closes our stdin (or dies): tests spawn us with a piped
// stdin they never write to. /dev/null ends at once, hence --ignore-stdin.
if (!args['ignore-stdin']) {
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}
