#!/usr/bin/env node
// A minimal, read-only Kubernetes API on 127.0.0.1 for helm/test.sh: just enough discovery for
// helm's `lookup` and GET on Secrets, whose data is read from SECRETS.json on every request (so the
// test can "rotate" a Secret between two renders). Prints the port, serves until killed.
//   node fake-kube-api.js SECRETS.json     SECRETS.json: {"<name>": {"<key>": "<base64>"}, ...}
'use strict';
const fs = require('fs');
const http = require('http');

const file = process.argv[2];
const server = http.createServer((req, res) => {
  const send = (code, obj) => {
    res.writeHead(code, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(obj));
  };
  const path = req.url.split('?')[0];
  console.error(req.method, path);
  if (req.method !== 'GET') return send(405, { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 405 });
  if (path === '/version') return send(200, { major: '1', minor: '30', gitVersion: 'v1.30.0' });
  if (path === '/api') return send(200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] });
  if (path === '/apis') return send(200, { kind: 'APIGroupList', apiVersion: 'v1', groups: [] });
  if (path === '/api/v1') {
    return send(200, {
      kind: 'APIResourceList', groupVersion: 'v1',
      resources: [{ name: 'secrets', singularName: 'secret', namespaced: true, kind: 'Secret', verbs: ['get'] }],
    });
  }
  const m = /^\/api\/v1\/namespaces\/([^/]+)\/secrets\/([^/]+)$/.exec(path);
  const secrets = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (m && secrets[m[2]]) {
    return send(200, { apiVersion: 'v1', kind: 'Secret', metadata: { name: m[2], namespace: m[1] }, data: secrets[m[2]] });
  }
  return send(404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 });
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
