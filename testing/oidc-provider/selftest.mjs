// Self-test of provider.mjs: starts it as a child process and checks, over real
// HTTP, everything Aion's Rust tests rely on. Run: node --test selftest.mjs
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

const PROVIDER = fileURLToPath(new URL('./provider.mjs', import.meta.url));
const API = 'https://api.aion.test';

/** Starts the provider; resolves to { child, issuer, port, stderr() }. */
async function start(extraArgs = []) {
  const child = spawn(process.execPath, [PROVIDER, '--port', '0', ...extraArgs], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  let out = '';
  const line = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`provider did not start: ${err}`)), 15000);
    child.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) { clearTimeout(timer); resolve(out.slice(0, nl)); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`provider exited ${code}: ${err}`)); });
  });
  const ready = JSON.parse(line);
  assert.deepEqual(Object.keys(ready).sort(), ['issuer', 'port']);
  assert.equal(typeof ready.port, 'number');
  return { child, ...ready, stderr: () => err };
}

function b64json(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

/** Decodes a JWS and verifies its RS256 signature against the provider's JWKS. */
async function verifyJwt(token, jwksUri) {
  const [h, p, s] = token.split('.');
  const header = b64json(h);
  const payload = b64json(p);
  const { keys } = await (await fetch(jwksUri)).json();
  const jwk = keys.find((k) => k.kid === header.kid);
  assert.ok(jwk, `kid ${header.kid} is in the JWKS`);
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  const ok = crypto.verify('RSA-SHA256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url'));
  assert.ok(ok, 'signature verifies with the JWKS key');
  return { header, payload };
}

async function clientCredentials(tokenEndpoint, clientId, extra = {}) {
  return fetch(tokenEndpoint, {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: 'client_credentials', client_id: clientId, client_secret: 'secret', ...extra,
    }),
  });
}

describe('oidc provider', () => {
  let p;
  let disco;

  before(async () => {
    p = await start();
    disco = await (await fetch(`${p.issuer}/.well-known/openid-configuration`)).json();
  });
  after(() => p.child.kill('SIGTERM'));

  test('ready line and discovery', () => {
    assert.equal(p.issuer, `http://127.0.0.1:${p.port}`);
    assert.equal(disco.issuer, p.issuer);
    assert.equal(disco.jwks_uri, `${p.issuer}/jwks`);
    assert.ok(disco.grant_types_supported.includes('client_credentials'));
    assert.ok(disco.grant_types_supported.includes('authorization_code'));
    assert.deepEqual(disco.code_challenge_methods_supported, ['S256']);
  });

  test('JWKS has one fresh RS256 signing key', async () => {
    const { keys } = await (await fetch(disco.jwks_uri)).json();
    assert.equal(keys.length, 1);
    assert.equal(keys[0].kty, 'RSA');
    assert.equal(keys[0].alg, 'RS256');
    assert.equal(keys[0].use, 'sig');
    assert.ok(keys[0].kid);
    assert.equal(keys[0].d, undefined, 'no private parts published');
  });

  test('client_credentials gives a JWT access token for the API audience', async () => {
    const res = await clientCredentials(disco.token_endpoint, 'aion-test-alice');
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.token_type, 'Bearer');
    assert.equal(body.expires_in, 3600);
    const { header, payload } = await verifyJwt(body.access_token, disco.jwks_uri);
    assert.equal(header.alg, 'RS256');
    assert.ok(header.kid);
    assert.equal(payload.iss, p.issuer);
    assert.equal(payload.aud, API);
    assert.equal(payload.sub, 'aion-test-alice');
    assert.equal(payload.client_id, 'aion-test-alice');
    assert.equal(payload.email, 'alice@lab.example');
    assert.equal(payload.name, 'Alice');
    assert.equal(typeof payload.iat, 'number');
    assert.equal(payload.exp - payload.iat, 3600);
    assert.ok(Math.abs(payload.iat - Date.now() / 1000) < 60);
  });

  test('explicit resource and another audience', async () => {
    let res = await clientCredentials(disco.token_endpoint, 'aion-test-bob', { resource: API });
    let { payload } = await verifyJwt((await res.json()).access_token, disco.jwks_uri);
    assert.equal(payload.aud, API);
    assert.equal(payload.sub, 'aion-test-bob');
    assert.equal(payload.email, 'bob@lab.example');
    assert.equal(payload.name, 'Bob');

    res = await clientCredentials(disco.token_endpoint, 'aion-test-bob', { resource: 'https://other.example' });
    assert.equal(res.status, 200);
    ({ payload } = await verifyJwt((await res.json()).access_token, disco.jwks_uri));
    assert.equal(payload.aud, 'https://other.example');
  });

  test('short-lived client: 1 second tokens', async () => {
    const res = await clientCredentials(disco.token_endpoint, 'aion-test-short');
    const body = await res.json();
    assert.equal(body.expires_in, 1);
    const { payload } = await verifyJwt(body.access_token, disco.jwks_uri);
    assert.equal(payload.exp - payload.iat, 1);
    assert.equal(payload.sub, 'aion-test-short');
  });

  test('wrong secret and unknown client are refused', async () => {
    let res = await fetch(disco.token_endpoint, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'aion-test-alice', client_secret: 'nope' }),
    });
    assert.equal(res.status, 401);
    assert.equal((await res.json()).error, 'invalid_client');
    res = await clientCredentials(disco.token_endpoint, 'nobody');
    assert.equal(res.status, 401);
  });

  for (const [clientId, secret, login, email, resource] of [
    ['aion-web', 'secret', 'alice', 'alice@lab.example'],
    ['aion-cli', null, 'carol', 'carol@partner.example'],
    ['aion-web', 'secret', 'bob', 'bob@lab.example', API],
  ]) test(`authorization code + PKCE login for ${clientId} as ${login}${resource ? ' with resource' : ''}`, async () => {
    const redirectUri = 'http://127.0.0.1:45678/auth/callback';
    const verifier = crypto.randomBytes(32).toString('base64url');
    const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
    const jar = new Map();
    const go = async (url, init = {}) => {
      const res = await fetch(new URL(url, p.issuer), {
        ...init,
        redirect: 'manual',
        headers: { ...init.headers, cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') },
      });
      for (const c of res.headers.getSetCookie()) {
        const [kv] = c.split(';');
        const i = kv.indexOf('=');
        jar.set(kv.slice(0, i), kv.slice(i + 1));
      }
      return res;
    };

    const auth = new URL(disco.authorization_endpoint);
    auth.search = new URLSearchParams({
      client_id: clientId,
      response_type: 'code',
      scope: 'openid email profile',
      redirect_uri: redirectUri,
      state: 'st4te',
      nonce: 'n0nce',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      ...(resource ? { resource } : {}),
    });
    let res = await go(auth);
    assert.equal(res.status, 303);
    res = await go(res.headers.get('location'));
    assert.equal(res.status, 200);
    const html = await res.text();
    const action = /<form[^>]*action="([^"]+)"/.exec(html)[1];
    assert.match(html, /name="login"/);
    assert.match(html, /name="password"/);

    res = await go(action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ prompt: 'login', login, password: 'anything' }),
    });
    assert.equal(res.status, 303);
    res = await go(res.headers.get('location'));
    assert.equal(res.status, 303, 'no consent screen for the first-party client');
    const back = new URL(res.headers.get('location'), p.issuer);
    assert.equal(`${back.origin}${back.pathname}`, redirectUri);
    assert.equal(back.searchParams.get('state'), 'st4te');
    const code = back.searchParams.get('code');
    assert.ok(code);

    const form = {
      grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier,
      ...(resource ? { resource } : {}),
    };
    res = await fetch(disco.token_endpoint, {
      method: 'POST',
      headers: secret
        ? { authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` }
        : {},
      body: new URLSearchParams(secret ? form : { ...form, client_id: clientId }),
    });
    const tokens = await res.json();
    assert.equal(res.status, 200, JSON.stringify(tokens));
    const { header, payload } = await verifyJwt(tokens.id_token, disco.jwks_uri);
    assert.equal(header.alg, 'RS256');
    assert.equal(payload.iss, p.issuer);
    assert.equal(payload.aud, clientId);
    assert.equal(payload.sub, login);
    assert.equal(payload.nonce, 'n0nce');
    assert.equal(payload.email, email);
    assert.equal(payload.name, login[0].toUpperCase() + login.slice(1));

    if (resource) {
      // A JWT access token for the API, with the user as subject.
      const at = await verifyJwt(tokens.access_token, disco.jwks_uri);
      assert.equal(at.header.typ, 'at+jwt');
      assert.equal(at.payload.aud, resource);
      assert.equal(at.payload.sub, login);
      assert.equal(at.payload.email, email);
      assert.equal(at.payload.client_id, clientId);
      return;
    }
    res = await fetch(disco.userinfo_endpoint, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    const me = await res.json();
    assert.equal(res.status, 200, JSON.stringify(me));
    assert.equal(me.sub, login);
    assert.equal(me.email, email);
  });

  test('a redirect URI that is not registered is refused', async () => {
    const auth = new URL(disco.authorization_endpoint);
    auth.search = new URLSearchParams({
      client_id: 'aion-web', response_type: 'code', scope: 'openid',
      redirect_uri: 'https://evil.example/cb', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256',
    });
    const res = await fetch(auth, { redirect: 'manual' });
    assert.equal(res.status, 400);
  });
});

describe('process lifecycle', () => {
  test('--issuer-path mounts the provider under a prefix', async () => {
    const p = await start(['--issuer-path', '/oidc']);
    try {
      assert.equal(p.issuer, `http://127.0.0.1:${p.port}/oidc`);
      const disco = await (await fetch(`${p.issuer}/.well-known/openid-configuration`)).json();
      assert.equal(disco.issuer, p.issuer);
      assert.equal(disco.token_endpoint, `${p.issuer}/token`);
      const res = await clientCredentials(disco.token_endpoint, 'aion-test-alice');
      const { payload } = await verifyJwt((await res.json()).access_token, disco.jwks_uri);
      assert.equal(payload.iss, p.issuer);
      assert.equal((await fetch(`http://127.0.0.1:${p.port}/.well-known/openid-configuration`)).status, 404);
    } finally {
      p.child.kill('SIGTERM');
    }
  });

  test('exits when stdin closes', async () => {
    const p = await start();
    const exited = once(p.child, 'exit');
    p.child.stdin.end();
    const [code] = await Promise.race([
      exited,
      new Promise((_, reject) => setTimeout(() => reject(new Error('still running')), 5000)),
    ]);
    assert.equal(code, 0);
  });

  test('exits cleanly on SIGTERM', async () => {
    const p = await start();
    const exited = once(p.child, 'exit');
    p.child.kill('SIGTERM');
    const [code] = await exited;
    assert.equal(code, 0);
  });

  test('each process has its own signing key', async () => {
    const a = await start();
    const b = await start();
    try {
      const ka = (await (await fetch(`${a.issuer}/jwks`)).json()).keys[0];
      const kb = (await (await fetch(`${b.issuer}/jwks`)).json()).keys[0];
      assert.notEqual(ka.n, kb.n);
      assert.notEqual(ka.kid, kb.kid);
    } finally {
      a.child.kill('SIGTERM');
      b.child.kill('SIGTERM');
    }
  });
});
