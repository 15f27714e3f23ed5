// A real OpenID Provider for the room server's tests: oidc-provider (certified), one process per provider.
//
// Usage: node server.mjs <config.json>. The config (written by tests/oidc/provider.py) holds
//   issuer, port, keys (private JWKs, the first one signs), clients (oidc-provider client metadata),
//   users ({login: {claims}}), with optional "passwords" ({login: password}).
// It prints "ready <issuer>" on stdout once it listens.
//
// Test-only hook, not part of OpenID Connect: POST /__test/next-id-token with {"id_token": "..."}
// makes the next token response carry that ID token instead of the real one, so that the tests can
// hand the room server a token with a wrong audience, an old expiry, a foreign key, alg "none", ...
// through the provider's real token endpoint.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

process.removeAllListeners('warning');

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const users = config.users || {};
let nextIdToken = null;
const backchannelSent = [];

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: { keys: config.keys },
  cookies: { keys: ['test-only-cookie-key-' + config.port] },
  conformIdTokenClaims: false,
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email'],
    groups: ['groups', 'languages'],
  },
  scopes: ['openid', 'profile', 'email', 'groups', 'offline_access'],
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
  },
  pkce: { required: () => true },
  // The room server of the tests is on loopback, which oidc-provider's SSRF guard refuses for
  // back-channel logout calls: the test provider calls it without that guard.
  fetch: (url, options) => { delete options.dispatcher; return globalThis.fetch(url, options); },
  ttl: { IdToken: 600, AccessToken: 600, AuthorizationCode: 60, Session: 3600, Interaction: 600, Grant: 3600 },
  async findAccount(ctx, id) {
    const claims = users[id] || {};
    return {
      accountId: id,
      async claims() { return { sub: id, ...claims }; },
    };
  },
  // First-party clients: no consent screen, the scopes asked for are granted.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope(ctx.oidc.params.scope || 'openid');
    await grant.save();
    return grant;
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><title>error</title><pre id="error">${out.error}: ${out.error_description || ''}</pre>`;
  },
});
provider.proxy = false;
provider.on('backchannel.error', (ctx, err, client) => {
  process.stdout.write(`backchannel.error ${client.clientId}: ${err && (err.stack || err.message)} ${err && err.cause ? (err.cause.stack || err.cause) : ""}\n`);
});
provider.on('backchannel.success', (ctx, client) => { process.stdout.write(`backchannel.success ${client.clientId}\n`); });

provider.use(async (ctx, next) => {
  if (ctx.path === '/__test/next-id-token' && ctx.method === 'POST') {
    let raw = '';
    for await (const chunk of ctx.req) raw += chunk;
    nextIdToken = JSON.parse(raw).id_token;
    ctx.status = 204;
    return;
  }
  // The login form checks the password when the test gave users one (devInteractions takes any).
  if (config.passwords && ctx.method === 'POST' && /^\/interaction\/[^/]+$/.test(ctx.path)) {
    let raw = '';
    for await (const chunk of ctx.req) raw += chunk;
    const form = new URLSearchParams(raw);
    if (form.get('prompt') === 'login' && config.passwords[form.get('login')] !== form.get('password')) {
      ctx.status = 401;
      ctx.type = 'html';
      ctx.body = '<!DOCTYPE html><title>Sign-in failed</title><p id="error">wrong login or password</p>';
      return;
    }
    ctx.request.body = raw;  // oidc-provider reads an already parsed body from here
  }
  await next();
  if (ctx.path === '/token' && nextIdToken && ctx.status === 200 && ctx.body && ctx.body.id_token) {
    ctx.body = { ...ctx.body, id_token: nextIdToken };
    nextIdToken = null;
  }
});

provider.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`ready ${config.issuer}\n`);
});
