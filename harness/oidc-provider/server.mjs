// panva's oidc-provider as an independent OpenID Connect peer for the testbed harness.
//
// Configured from the same Keycloak realm-export JSON as the mock IdP and a real Keycloak
// (users with passwords, the confidential client and its secret) and served with Keycloak's
// URL layout under /realms/{realm} (issuer http://HOST:PORT/realms/{realm}, endpoints under
// /protocol/openid-connect/...), so the seed's manifests work unchanged.
//
// The login and consent pages look like oidc-provider's dev interactions (input[name=login],
// input[name=password], button.login-submit; then a consent page with the same button), but
// unlike the dev pages they check the password: a wrong one re-renders the form with
// "Invalid username or password.".
//
// Usage: node server.mjs --realm FILE [--host localhost] [--port 0] [--client ID]
//                        [--redirect-uri URI]...
// Prints `READY <issuer>` on stdout once it listens. Stops on SIGTERM/SIGINT.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';

import Provider from 'oidc-provider';

function parseArgs(argv) {
  const args = { host: 'localhost', port: 0, redirectUris: [], client: null, realm: null };
  for (let i = 0; i < argv.length; i += 1) {
    const value = argv[i + 1];
    switch (argv[i]) {
      case '--realm': args.realm = value; i += 1; break;
      case '--host': args.host = value; i += 1; break;
      case '--port': args.port = Number(value); i += 1; break;
      case '--client': args.client = value; i += 1; break;
      case '--redirect-uri': args.redirectUris.push(value); i += 1; break;
      default: throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  if (!args.realm) throw new Error('--realm FILE is required');
  return args;
}

const args = parseArgs(process.argv.slice(2));
const realm = JSON.parse(readFileSync(args.realm, 'utf8'));
const prefix = `/realms/${realm.realm}`;

const users = (realm.users || []).filter((u) => u.enabled !== false).map((u) => ({
  id: u.id || u.username,
  username: u.username,
  email: u.email,
  emailVerified: Boolean(u.emailVerified),
  password: (u.credentials || []).find((c) => c.type === 'password')?.value,
}));
const findUser = (login) => users.find((u) => u.username === login || u.email === login);

const clients = (realm.clients || [])
  .filter((c) => c.enabled !== false && !c.publicClient && c.secret)
  .filter((c) => !args.client || c.clientId === args.client)
  .map((c) => ({
    client_id: c.clientId,
    client_secret: c.secret,
    // Keycloak allows wildcards; oidc-provider wants exact URIs: the harness passes them.
    redirect_uris: args.redirectUris.length
      ? args.redirectUris
      : (c.redirectUris || []).filter((u) => !u.includes('*')),
    response_types: ['code'],
    grant_types: ['authorization_code', 'refresh_token'],
    token_endpoint_auth_method: 'client_secret_basic',
  }));

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' };

const server = http.createServer();
await new Promise((resolve) => { server.listen(args.port, args.host === 'localhost' ? '127.0.0.1' : args.host, resolve); });
const { port } = server.address();
const issuer = `http://${args.host}:${port}${prefix}`;

const oidc = `/protocol/openid-connect`;
const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  routes: {
    authorization: `${oidc}/auth`,
    token: `${oidc}/token`,
    jwks: `${oidc}/certs`,
    userinfo: `${oidc}/userinfo`,
    end_session: `${oidc}/logout`,
    introspection: `${oidc}/token/introspect`,
    revocation: `${oidc}/revoke`,
  },
  claims: {
    openid: ['sub', 'preferred_username'],
    email: ['email', 'email_verified'],
  },
  // Keycloak puts the scope claims in the ID token, even for response_type=code.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `${prefix}/interaction/${interaction.uid}` },
  pkce: { required: () => false },
  async findAccount(ctx, id) {
    const user = users.find((u) => u.id === id);
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          preferred_username: user.username,
          email: user.email,
          email_verified: user.emailVerified,
        };
      },
    };
  },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${title}</title></head>`
  + `<body><div class="container"><h1>${title}</h1>${body}</div></body></html>`;
const loginPage = (uid, error) => page('Sign-in', `${error ? `<p class="error" id="input-error">${escape(error)}</p>` : ''}`
  + `<form autocomplete="off" action="${prefix}/interaction/${uid}/login" method="post">`
  + '<input type="hidden" name="prompt" value="login"/>'
  + '<input required type="text" name="login" placeholder="Enter your login" autofocus="on">'
  + '<input required type="password" name="password" placeholder="and password">'
  + '<button type="submit" class="login login-submit">Sign-in</button></form>');
const consentPage = (uid, client) => page('Authorize', `<p>${escape(client)} asks for your identity.</p>`
  + `<form autocomplete="off" action="${prefix}/interaction/${uid}/confirm" method="post">`
  + '<input type="hidden" name="prompt" value="consent"/>'
  + '<button autofocus type="submit" class="login login-submit">Continue</button></form>');

function send(res, status, html) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function interaction(req, res, rest) {
  const [uid, action] = rest.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, page('Error', '<p>interaction mismatch</p>'));
  if (req.method === 'GET') {
    if (details.prompt.name === 'login') return send(res, 200, loginPage(uid));
    return send(res, 200, consentPage(uid, details.params.client_id));
  }
  if (req.method === 'POST' && action === 'login') {
    const form = await readForm(req);
    const user = findUser(form.get('login'));
    if (!user || user.password === undefined || user.password !== form.get('password')) {
      return send(res, 200, loginPage(uid, 'Invalid username or password.'));
    }
    return provider.interactionFinished(req, res, { login: { accountId: user.id } }, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && action === 'confirm') {
    await readForm(req);
    const { prompt: { details: missing }, params, session: { accountId } } = details;
    let grant = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
    if (!grant) grant = new provider.Grant({ accountId, clientId: params.client_id });
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  return send(res, 404, page('Not found', ''));
}

const callback = provider.callback();
server.on('request', async (req, res) => {
  try {
    const url = new URL(req.url, issuer);
    if (url.pathname.startsWith(`${prefix}/interaction/`)) {
      await interaction(req, res, url.pathname.slice(`${prefix}/interaction/`.length));
      return;
    }
    if (url.pathname === prefix || url.pathname.startsWith(`${prefix}/`)) {
      req.originalUrl = req.url;
      req.url = req.url.slice(prefix.length) || '/';
      callback(req, res);
      return;
    }
    send(res, 404, page('Not found', ''));
  } catch (err) {
    console.error('request failed', err);
    if (!res.headersSent) send(res, 500, page('Error', `<p>${escape(err.message)}</p>`));
  }
});

for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => { server.close(); process.exit(0); });
console.log(`READY ${issuer}`);
