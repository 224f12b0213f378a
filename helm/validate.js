#!/usr/bin/env node
// Offline checks on manifests rendered by `helm template` (used by helm/test.sh).
//
//   node validate.js schema <rendered.yaml>            validate every document against the
//                                                       Kubernetes OpenAPI schemas (kubernetes-models@4)
//   node validate.js assert <name> <rendered.yaml> [arg...]   run one named property check below
//   node validate.js values-doc <values.yaml> <README.md>      every value documented and listed
//   node validate.js rules-file <rendered.yaml> <out.yaml> [--no-annotations]
//                                                       the PrometheusRule's groups as a Prometheus
//                                                       rules file (for promtool)
//   node validate.js dashboard <rendered.yaml> <out.yaml>      check the Grafana dashboard ConfigMap and
//                                                       write its queries as recording rules (promtool)
//   node validate.js metric-names <known.txt> <rules.yaml>...   every payorch_* metric the rules use is in
//                                                       known.txt (one name per line)
//
// Needs `kubernetes-models` (4.x: 5.x needs Node 22) and `yaml` on NODE_PATH. Prints one line per
// problem and exits 1 if there is any. kubernetes-models does not flag unknown fields, hence the
// explicit property checks.
'use strict';
const fs = require('fs');
const YAML = require('yaml');

function loadDocs(file) {
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'));
  const out = [];
  for (const d of docs) {
    if (d.errors.length) throw new Error(`${file}: YAML error: ${d.errors[0].message}`);
    const obj = d.toJSON();
    if (obj !== null && obj !== undefined) out.push(obj);
  }
  return out;
}

const problems = [];
function expect(cond, msg) { if (!cond) problems.push(msg); }
const byKind = (docs, kind) => docs.filter((d) => d.kind === kind);
function one(docs, kind) {
  const found = byKind(docs, kind);
  if (found.length !== 1) throw new Error(`expected exactly one ${kind}, found ${found.length}`);
  return found[0];
}
const podSpec = (docs) => one(docs, 'Deployment').spec.template.spec;
function merchantsConfigMap(docs) {
  const found = byKind(docs, 'ConfigMap').filter((c) => c.data && 'merchants.json' in c.data);
  if (found.length !== 1) throw new Error(`expected exactly one ConfigMap with merchants.json, found ${found.length}`);
  return found[0];
}
const helmTestPods = (docs) => byKind(docs, 'Pod').filter((p) =>
  ((p.metadata.annotations || {})['helm.sh/hook'] || '').split(',').includes('test'));
const container = (docs) => podSpec(docs).containers.find((c) => c.name === 'payorchd');
const arg = (c, flag) => {
  const a = (c.args || []).find((x) => x.startsWith(`--${flag}=`));
  return a === undefined ? undefined : a.slice(flag.length + 3);
};
const seconds = (d) => {
  const m = /^(\d+)s$/.exec(d || '');
  return m ? Number(m[1]) : NaN;
};

// Minimal structural checks for CRDs that kubernetes-models does not ship.
const crdChecks = {
  'monitoring.coreos.com/v1/ServiceMonitor': (o) => {
    const eps = (o.spec && o.spec.endpoints) || [];
    expect(eps.length > 0, 'ServiceMonitor: no endpoints');
    for (const e of eps) expect(typeof e.port === 'string' && e.port, 'ServiceMonitor: endpoint without a named port');
    expect(o.spec && o.spec.selector && o.spec.selector.matchLabels, 'ServiceMonitor: no selector.matchLabels');
  },
  'cert-manager.io/v1/Certificate': (o) => {
    const sp = o.spec || {};
    expect(typeof sp.secretName === 'string' && sp.secretName, 'Certificate: no secretName');
    expect(sp.issuerRef && sp.issuerRef.name && ['Issuer', 'ClusterIssuer'].includes(sp.issuerRef.kind), 'Certificate: bad issuerRef');
    expect((sp.dnsNames || []).length || sp.commonName || (sp.uris || []).length, 'Certificate: no subject');
    expect(/^[0-9]+h$/.test(sp.duration || '') && /^[0-9]+h$/.test(sp.renewBefore || ''), 'Certificate: duration/renewBefore');
  },
  'monitoring.coreos.com/v1/PrometheusRule': (o) => {
    const groups = (o.spec && o.spec.groups) || [];
    expect(groups.length > 0, 'PrometheusRule: no groups');
    for (const g of groups) {
      expect(typeof g.name === 'string' && g.name, 'PrometheusRule: group without a name');
      expect((g.rules || []).length > 0, `PrometheusRule: group ${g.name} has no rules`);
      for (const r of g.rules || []) {
        expect(typeof (r.alert || r.record) === 'string', `PrometheusRule: rule in ${g.name} without alert/record`);
        expect(typeof r.expr === 'string' && r.expr.trim(), `PrometheusRule: ${r.alert || r.record} without expr`);
        expect(!r.alert || (r.labels && r.labels.severity), `PrometheusRule: ${r.alert} without a severity label`);
      }
    }
  },
};

function schema(file) {
  const docs = loadDocs(file);
  expect(docs.length > 0, `${file}: no documents`);
  for (const o of docs) {
    const id = `${o.apiVersion}/${o.kind} ${o.metadata && o.metadata.name}`;
    expect(o.metadata && o.metadata.name, `${id}: no metadata.name`);
    const key = `${o.apiVersion}/${o.kind}`;
    if (crdChecks[key]) { crdChecks[key](o); continue; }
    let Model;
    try {
      Model = require(`kubernetes-models/${o.apiVersion}`)[o.kind];
    } catch (e) {
      Model = undefined;
    }
    if (!Model) { problems.push(`${id}: unknown apiVersion/kind (no schema)`); continue; }
    try {
      new Model(o).validate();
    } catch (e) {
      problems.push(`${id}: ${e.message}`);
    }
  }
  return docs.length;
}

const asserts = {
  // Hardened pod and container security context; no service account token.
  securityContext(docs) {
    const ps = podSpec(docs);
    const psc = ps.securityContext || {};
    expect(psc.runAsNonRoot === true, 'pod runAsNonRoot is not true');
    expect(psc.runAsUser === 65532, 'pod runAsUser is not 65532');
    expect(psc.seccompProfile && psc.seccompProfile.type === 'RuntimeDefault', 'pod seccompProfile is not RuntimeDefault');
    expect(ps.automountServiceAccountToken === false, 'pod automountServiceAccountToken is not false');
    const testContainers = [].concat(...helmTestPods(docs).map((p) => p.spec.containers));
    for (const p of helmTestPods(docs)) {
      expect(p.spec.securityContext && p.spec.securityContext.runAsNonRoot === true, `${p.metadata.name}: pod runAsNonRoot is not true`);
      expect(p.spec.automountServiceAccountToken === false, `${p.metadata.name}: automountServiceAccountToken is not false`);
    }
    for (const c of ps.containers.concat(ps.initContainers || [], testContainers)) {
      const sc = c.securityContext || {};
      expect(sc.runAsNonRoot === true, `${c.name}: runAsNonRoot is not true`);
      expect(sc.runAsUser === 65532, `${c.name}: runAsUser is not 65532`);
      expect(sc.readOnlyRootFilesystem === true, `${c.name}: readOnlyRootFilesystem is not true`);
      expect(sc.allowPrivilegeEscalation === false, `${c.name}: allowPrivilegeEscalation is not false`);
      expect(sc.privileged !== true, `${c.name}: privileged`);
      expect(sc.capabilities && JSON.stringify(sc.capabilities.drop) === '["ALL"]', `${c.name}: capabilities.drop is not [ALL]`);
      expect(!(sc.capabilities && sc.capabilities.add && sc.capabilities.add.length), `${c.name}: adds capabilities`);
      expect(sc.seccompProfile && sc.seccompProfile.type === 'RuntimeDefault', `${c.name}: seccompProfile is not RuntimeDefault`);
      expect(c.resources && c.resources.requests && c.resources.limits && c.resources.limits.memory,
        `${c.name}: resources requests/limits missing`);
    }
    const sas = byKind(docs, 'ServiceAccount');
    for (const sa of sas) expect(sa.automountServiceAccountToken === false, 'ServiceAccount automountServiceAccountToken is not false');
    const tmp = (container(docs).volumeMounts || []).find((m) => m.mountPath === '/tmp');
    expect(tmp, 'no writable /tmp mount for the read-only root filesystem');
  },

  // Readiness is a native gRPC probe on the plaintext health-only listener (--health_listen; the
  // kubelet has no client certificate for the mTLS gRPC port); liveness/startup are HTTP /healthz
  // unless the optional arg "grpc-liveness" asks for a gRPC liveness probe.
  probes(docs, mode) {
    const c = container(docs);
    const grpcPort = c.ports.find((p) => p.name === 'grpc').containerPort;
    const healthPort = (c.ports.find((p) => p.name === 'health') || {}).containerPort;
    expect(healthPort && healthPort !== grpcPort, 'no separate health containerPort');
    expect(arg(c, 'health_listen') === `0.0.0.0:${healthPort}`, '--health_listen does not match the health containerPort');
    expect(c.readinessProbe && c.readinessProbe.grpc && c.readinessProbe.grpc.port === healthPort,
      'readinessProbe is not a gRPC probe on the health port');
    expect(arg(c, 'grpc_listen') === `0.0.0.0:${grpcPort}`, '--grpc_listen does not match the grpc containerPort');
    if (mode === 'grpc-liveness') {
      expect(c.livenessProbe && c.livenessProbe.grpc && c.livenessProbe.grpc.port === healthPort,
        'livenessProbe is not a gRPC probe on the health port');
    } else {
      expect(c.livenessProbe && c.livenessProbe.httpGet && c.livenessProbe.httpGet.path === '/healthz' &&
        c.livenessProbe.httpGet.port === 'http', 'livenessProbe is not HTTP /healthz');
    }
    expect(c.startupProbe && c.startupProbe.httpGet && c.startupProbe.httpGet.path === '/healthz',
      'startupProbe is not HTTP /healthz');
  },

  // SIGTERM handling: preStop sleep, then drain, all inside the termination grace period.
  drain(docs) {
    const ps = podSpec(docs);
    const c = container(docs);
    const drain = seconds(arg(c, 'drain_delay')) + seconds(arg(c, 'drain_grace'));
    const pre = c.lifecycle && c.lifecycle.preStop && c.lifecycle.preStop.exec;
    expect(pre && pre.command[0] === '/bin/sleep', 'no preStop sleep');
    const sleep = pre ? Number(pre.command[1]) : 0;
    expect(Number.isFinite(drain), '--drain_delay or --drain_grace missing');
    expect(ps.terminationGracePeriodSeconds > drain + sleep,
      `terminationGracePeriodSeconds ${ps.terminationGracePeriodSeconds} <= drain delay + grace ${drain} + preStop ${sleep}`);
  },

  // merchants.json in the ConfigMap is valid JSON in payorchd's shape, with key file paths only,
  // and nothing secret-looking appears in any ConfigMap. The chart renders no Secret at all.
  configMap(docs, expectMerchants) {
    expect(byKind(docs, 'Secret').length === 0, 'the chart rendered a Secret');
    for (const cm of byKind(docs, 'ConfigMap')) {
      const text = JSON.stringify(cm.data || {});
      expect(!/BEGIN [A-Z ]*(PRIVATE|PUBLIC) KEY|PRIVATE KEY|password|passwd|secret_key/i.test(text),
        `ConfigMap ${cm.metadata.name} contains secret-looking data`);
    }
    const cm = merchantsConfigMap(docs);
    let cfg;
    try { cfg = JSON.parse(cm.data['merchants.json']); } catch (e) { problems.push(`merchants.json is not JSON: ${e.message}`); return; }
    expect(Array.isArray(cfg.merchants), 'merchants.json has no merchants array');
    const n = Number(expectMerchants || 0);
    expect(cfg.merchants.length === n, `merchants.json has ${cfg.merchants.length} merchants, expected ${n}`);
    const allowed = ['merchant_id', 'app_id', 'private_key_file', 'paykka_public_key_file',
      'verify_response_signatures', 'client_key', 'base_url'];
    for (const m of cfg.merchants) {
      for (const k of Object.keys(m)) expect(allowed.includes(k), `merchants.json: unexpected field ${k}`);
      for (const k of allowed) expect(k in m, `merchants.json: ${m.merchant_id} lacks ${k}`);
      expect(typeof m.verify_response_signatures === 'boolean', `${m.merchant_id}: verify_response_signatures is not a boolean`);
      expect(/^(sandbox|production|production-eu|https?:\/\/.+)$/.test(m.base_url), `${m.merchant_id}: bad base_url ${m.base_url}`);
    }
    const c = container(docs);
    const mount = (c.volumeMounts || []).find((v) => v.name === 'config');
    expect(mount && `${mount.mountPath}/merchants.json` === arg(c, 'merchants_config'),
      '--merchants_config does not point at the mounted ConfigMap');
  },

  // Every merchant key file path in merchants.json is a file projected from the named Secret
  // (arg: default Secret name), mounted read-only; no key material comes from env.
  secretVolume(docs, secretName) {
    const ps = podSpec(docs);
    const c = container(docs);
    const cfg = JSON.parse(merchantsConfigMap(docs).data['merchants.json']);
    const vol = ps.volumes.find((v) => v.name === 'merchant-keys');
    if (!cfg.merchants.length) { expect(!vol, 'merchant-keys volume rendered without merchants'); return; }
    expect(vol && vol.projected && vol.projected.sources, 'no projected merchant-keys volume');
    if (!vol) return;
    const mount = c.volumeMounts.find((m) => m.name === 'merchant-keys');
    expect(mount && mount.readOnly === true, 'merchant-keys is not mounted read-only');
    const files = {};
    for (const src of vol.projected.sources) {
      expect(src.secret && src.secret.name, 'projected source is not a Secret');
      for (const it of src.secret.items) files[`${mount.mountPath}/${it.path}`] = { secret: src.secret.name, key: it.key };
    }
    expect(Object.values(files).some((f) => f.secret === secretName), `no key comes from Secret ${secretName}`);
    for (const m of cfg.merchants) {
      for (const [field, base] of [['private_key_file', 'private_key.pem'], ['paykka_public_key_file', 'paykka_public.pem']]) {
        const f = files[m[field]];
        expect(f, `${m.merchant_id}: ${m[field]} is not projected from a Secret`);
        if (f) expect(f.key === `${m.merchant_id}.${base}`, `${m.merchant_id}: ${m[field]} comes from key ${f.key}`);
      }
    }
    for (const e of c.env || []) {
      expect(!/KEY|PEM|PASSWORD/i.test(e.name), `suspicious env ${e.name}`);
    }
  },

  // Labels and selectors line up; Service ports map to named container ports; config checksum set.
  wiring(docs) {
    const dep = one(docs, 'Deployment');
    const podLabels = dep.spec.template.metadata.labels;
    const sel = dep.spec.selector.matchLabels;
    const matches = (s) => Object.entries(s).every(([k, v]) => podLabels[k] === v);
    expect(matches(sel), 'Deployment selector does not match pod labels');
    for (const svc of byKind(docs, 'Service')) {
      expect(matches(svc.spec.selector), `Service ${svc.metadata.name} selector does not match pod labels`);
      for (const p of svc.spec.ports) {
        expect(container(docs).ports.some((cp) => cp.name === p.targetPort || cp.containerPort === p.targetPort ||
          (p.targetPort === undefined && cp.containerPort === p.port)), `Service ${svc.metadata.name} port ${p.name} has no container port`);
      }
    }
    const main = byKind(docs, 'Service').find((s) => s.spec.clusterIP !== 'None');
    expect(main && main.spec.ports.some((p) => p.name === 'grpc') && main.spec.ports.some((p) => p.name === 'http'),
      'main Service lacks grpc or http port');
    expect(/^[a-f0-9]{64}$/.test((dep.spec.template.metadata.annotations || {})['checksum/config'] || ''),
      'no checksum/config annotation');
    const tsc = dep.spec.template.spec.topologySpreadConstraints || [];
    expect(tsc.length > 0 && tsc.every((t) => matches(t.labelSelector.matchLabels)), 'topologySpreadConstraints missing or not matching');
    for (const pdb of byKind(docs, 'PodDisruptionBudget')) expect(matches(pdb.spec.selector.matchLabels), 'PDB selector does not match');
  },

  // Deployment replica count (arg: number, or "hpa" meaning no replicas field and an HPA present).
  replicas(docs, want) {
    const dep = one(docs, 'Deployment');
    if (want === 'hpa') {
      expect(dep.spec.replicas === undefined, 'Deployment sets replicas while an HPA owns them');
      const hpa = one(docs, 'HorizontalPodAutoscaler');
      expect(hpa.apiVersion === 'autoscaling/v2', 'HPA is not autoscaling/v2');
      expect(hpa.spec.scaleTargetRef.name === dep.metadata.name, 'HPA does not target the Deployment');
      expect(hpa.spec.minReplicas <= hpa.spec.maxReplicas, 'HPA min > max');
      expect((hpa.spec.metrics || []).length > 0, 'HPA has no metrics');
    } else {
      expect(dep.spec.replicas === Number(want), `replicas ${dep.spec.replicas}, expected ${want}`);
      expect(byKind(docs, 'HorizontalPodAutoscaler').length === 0, 'HPA rendered although disabled');
    }
    expect(byKind(docs, 'PodDisruptionBudget').length === 1, 'no PodDisruptionBudget');
  },

  // ServiceMonitor scrapes /metrics on a port the main Service really has.
  serviceMonitor(docs) {
    const sm = one(docs, 'ServiceMonitor');
    const svc = byKind(docs, 'Service').find((s) => s.spec.clusterIP !== 'None');
    for (const e of sm.spec.endpoints) {
      expect(svc.spec.ports.some((p) => p.name === e.port), `ServiceMonitor port ${e.port} not on the Service`);
      expect(e.path === '/metrics', 'ServiceMonitor path is not /metrics');
    }
    const matches = Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => svc.metadata.labels[k] === v);
    expect(matches, 'ServiceMonitor selector does not match the Service labels');
  },

  // The Redis password (arg: Secret name, or "none") reaches payorchd only as a file: a read-only
  // mount of exactly that Secret's key, named by --redis_password_file; never through env.
  redisPassword(docs, secretName) {
    const ps = podSpec(docs);
    const c = container(docs);
    for (const e of c.env || []) {
      expect(!/REDIS/i.test(e.name), `Redis setting through env ${e.name}`);
    }
    const file = arg(c, 'redis_password_file');
    const vol = (ps.volumes || []).find((v) => v.name === 'redis-password');
    if (secretName === 'none') {
      expect(file === undefined && !vol, 'Redis password file without redis.existingSecret');
      return;
    }
    expect(file, 'no --redis_password_file');
    expect(vol && vol.secret && vol.secret.secretName === secretName, `redis-password volume is not Secret ${secretName}`);
    if (!file || !vol) return;
    const mount = (c.volumeMounts || []).find((m) => m.name === 'redis-password');
    expect(mount && mount.readOnly === true, 'redis-password is not mounted read-only');
    expect(!mount.subPath, 'redis-password mounted with subPath (would never see a rotated Secret)');
    const items = vol.secret.items || [];
    expect(items.length === 1 && `${mount.mountPath}/${items[0].path}` === file,
      `--redis_password_file ${file} is not the mounted Secret key`);
    expect((vol.secret.defaultMode & 0o077 & ~0o040) === 0, 'Redis password file readable by others');
  },

  // checksum/secrets on the pod template (arg: "absent" when rollOnSecretChange is off).
  secretsChecksum(docs, mode) {
    const ann = one(docs, 'Deployment').spec.template.metadata.annotations || {};
    if (mode === 'absent') {
      expect(!('checksum/secrets' in ann), 'checksum/secrets present although disabled');
    } else {
      expect(/^[a-f0-9]{64}$/.test(ann['checksum/secrets'] || ''), 'no checksum/secrets annotation');
    }
  },

  // The `helm test` hook pod: a test hook that never becomes a Service endpoint, runs the payorch
  // image (arg: expected image, default: the Deployment's; "-" for that) and checks the Service's
  // gRPC port, with a client certificate from a Secret (arg: its name) unless the server is plaintext.
  helmTest(docs, image, secretName) {
    const pods = helmTestPods(docs);
    expect(pods.length === 1, `expected one helm test pod, found ${pods.length}`);
    if (pods.length !== 1) return;
    const pod = pods[0];
    expect(pod.spec.restartPolicy === 'Never', 'test pod restartPolicy is not Never');
    expect((pod.metadata.annotations['helm.sh/hook-delete-policy'] || '').includes('before-hook-creation'),
      'test pod is not replaced on the next run (hook-delete-policy)');
    const labels = pod.metadata.labels || {};
    for (const svc of byKind(docs, 'Service')) {
      const selects = Object.entries(svc.spec.selector).every(([k, v]) => labels[k] === v);
      expect(!selects, `Service ${svc.metadata.name} selects the test pod`);
    }
    const c = pod.spec.containers[0];
    expect(c.image === (image && image !== '-' ? image : container(docs).image), `test image ${c.image}`);
    const svc = byKind(docs, 'Service').find((s) => s.spec.clusterIP !== 'None');
    const port = svc.spec.ports.find((p) => p.name === 'grpc').port;
    const script = (c.command || []).concat(c.args || []).join(' ');
    const target = `${svc.metadata.name}.${svc.metadata.namespace}.svc:${port}`;
    expect(script.includes(`--target=${target} `), `test does not target ${target}`);
    expect(script.includes('health') && script.includes(`'"SERVING"'`), 'test does not check for "SERVING"');
    const plaintext = (container(docs).args || []).includes('--insecure_plaintext');
    if (plaintext) {
      expect(/payorchctl --plaintext /.test(script), 'plaintext server, but the test does not use --plaintext');
    } else {
      // mTLS: --ca/--cert/--key name files of a Secret volume mounted read-only in the test pod.
      expect(!script.includes('--plaintext'), 'the test pod talks plaintext to an mTLS server');
      const files = {};
      for (const m of c.volumeMounts || []) {
        const v = (pod.spec.volumes || []).find((x) => x.name === m.name);
        if (!v || !v.secret || m.readOnly !== true) continue;
        for (const it of v.secret.items || []) files[`${m.mountPath}/${it.path}`] = { secret: v.secret.secretName, key: it.key };
      }
      for (const [flag, key] of [['ca', 'ca.crt'], ['cert', 'tls.crt'], ['key', 'tls.key']]) {
        const m = new RegExp(`payorchctl [^\\n]*--${flag}=(\\S+)`).exec(script);
        const f = m && files[m[1]];
        expect(f && f.key === key, `the test's --${flag} is not key ${key} of a read-only Secret volume`);
        if (f && secretName) expect(f.secret === secretName, `the test's client certificate comes from ${f.secret}, not ${secretName}`);
      }
    }
    const np = byKind(docs, 'NetworkPolicy')[0];
    if (np) {
      const grpcRules = (np.spec.ingress || []).filter((r) => r.ports.some((p) => p.port === 'grpc'));
      const admits = grpcRules.some((r) => r.from.some((f) => f.podSelector && !f.namespaceSelector &&
        Object.entries(f.podSelector.matchLabels || {}).every(([k, v]) => labels[k] === v)));
      expect(admits, 'the NetworkPolicy does not admit the test pod on the grpc port');
    }
  },

  // NetworkPolicy: both directions restricted. Ingress only on the grpc/webhook/http/health ports:
  // grpc only from pods selected by labels (callers, the helm test pod; never every pod or an IP
  // block), webhook only from a namespace-scoped peer (the ingress controller), http/health only from
  // a namespace (monitoring) or IP blocks (kubelets). Egress only DNS, Redis (arg: redis port) and
  // PayKKa by CIDR on 443 (0.0.0.0/0 only with every private, link-local and loopback range
  // excepted). Optional arg "webhook": the webhook port must be admitted. Arg "sameNamespace": grpc
  // may also admit the whole namespace (networkPolicy.ingress.grpc.allowSameNamespace).
  networkPolicy(docs, redisPort, ...opts) {
    const np = one(docs, 'NetworkPolicy');
    const sel = JSON.stringify(one(docs, 'Deployment').spec.selector.matchLabels);
    expect(JSON.stringify(np.spec.podSelector.matchLabels) === sel, 'the NetworkPolicy does not select the payorchd pods');
    const ingress = np.spec.ingress || [];
    const ports = ingress.map((r) => r.ports.map((p) => p.port).join(','));
    if (opts.includes('webhook')) {
      expect(ports.includes('webhook'), 'the webhook port is not reachable through the NetworkPolicy');
      const c = container(docs);
      expect(c.ports.some((p) => p.name === 'webhook'), 'no webhook container port');
    }
    expect(JSON.stringify(np.spec.policyTypes) === '["Ingress","Egress"]', 'policyTypes is not [Ingress, Egress]');
    const labelled = (f) => f.podSelector && Object.keys(f.podSelector.matchLabels || {}).length > 0;
    for (const r of ingress) {
      expect(r.from && r.from.length, 'ingress rule without from (allows everyone)');
      const rp = (r.ports || []).map((p) => p.port);
      expect(rp.length && rp.every((p) => ['grpc', 'http', 'webhook', 'health'].includes(p)),
        `ingress on a port other than grpc/http/webhook/health: ${rp}`);
      for (const f of r.from || []) {
        if (rp.includes('grpc')) {
          const whole = opts.includes('sameNamespace') && f.podSelector && !f.namespaceSelector && !labelled(f);
          expect(whole || (labelled(f) && !f.ipBlock), `gRPC admitted from a peer without pod labels: ${JSON.stringify(f)}`);
        }
        if (rp.includes('webhook')) {
          expect(f.namespaceSelector && Object.keys(f.namespaceSelector.matchLabels || {}).length,
            `webhook admitted from a peer that is not namespace-scoped (ingress controller): ${JSON.stringify(f)}`);
        }
        if (rp.includes('http') || rp.includes('health')) {
          expect(rp.every((p) => p === 'http' || p === 'health'), 'http/health share a rule with another port');
          expect((f.namespaceSelector && Object.keys(f.namespaceSelector.matchLabels || {}).length) || f.ipBlock ||
            opts.includes('sameNamespace'), `http/health admitted from ${JSON.stringify(f)}`);
        }
      }
    }
    expect(ingress.some((r) => r.ports.some((p) => p.port === 'grpc')), 'no gRPC ingress rule');
    const eg = np.spec.egress || [];
    const privateRanges = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '127.0.0.0/8'];
    for (const r of eg) {
      expect(r.to && r.to.length, 'egress rule without to (allows everywhere)');
      expect(r.ports && r.ports.length, 'egress rule without ports (allows every port)');
      for (const t of r.to || []) {
        if (t.ipBlock && /^0\.0\.0\.0\/0$|^::\/0$/.test(t.ipBlock.cidr)) {
          const ex = t.ipBlock.except || [];
          expect(privateRanges.every((x) => ex.includes(x)), `egress to ${t.ipBlock.cidr} without excepting ${privateRanges}`);
        }
      }
    }
    const hasPort = (r, port, proto) => r.ports.some((p) => p.port === port && (p.protocol || 'TCP') === proto);
    expect(eg.some((r) => hasPort(r, 53, 'UDP')), 'no DNS egress');
    expect(eg.some((r) => hasPort(r, Number(redisPort || 6379), 'TCP')), 'no Redis egress');
    const https = eg.filter((r) => hasPort(r, 443, 'TCP'));
    expect(https.length === 1 && https[0].to.every((t) => t.ipBlock && t.ipBlock.cidr), 'PayKKa egress is not CIDR-only on 443');
    expect(eg.length === 3, `expected exactly 3 egress rules (DNS, Redis, PayKKa), got ${eg.length}`);
  },

  // The gRPC port's credentials. Arg "mtls": no --insecure_plaintext; --tls_cert_file, --tls_key_file
  // and --tls_client_ca_file are keys of the Secret (arg 2, if given) in a read-only volume;
  // --caller_policy is a file of a ConfigMap volume mounted as a whole directory (no subPath, so
  // Kubernetes' ..data swap reaches payorchd) and that ConfigMap, when rendered, is valid policy JSON
  // and not part of checksum/config. Arg "plaintext": --insecure_plaintext and none of those.
  mtls(docs, mode, secretName) {
    const ps = podSpec(docs);
    const c = container(docs);
    const args = c.args || [];
    const tlsFlags = ['tls_cert_file', 'tls_key_file', 'tls_client_ca_file', 'caller_policy'];
    const grpcSvcPorts = byKind(docs, 'Service').map((x) => x.spec.ports.find((p) => p.name === 'grpc')).filter(Boolean);
    const wantProto = mode === 'plaintext' ? 'kubernetes.io/h2c' : 'tls';
    for (const p of grpcSvcPorts) expect(p.appProtocol === wantProto, `Service grpc port appProtocol ${p.appProtocol}, not ${wantProto}`);
    if (mode === 'plaintext') {
      expect(args.includes('--insecure_plaintext'), 'no --insecure_plaintext although asked for');
      for (const f of tlsFlags) expect(arg(c, f) === undefined, `--${f} with --insecure_plaintext`);
      return;
    }
    expect(!args.some((a) => a.startsWith('--insecure_plaintext')), '--insecure_plaintext by default');
    const volFiles = (pred) => {
      const files = {};
      for (const m of c.volumeMounts || []) {
        const v = ps.volumes.find((x) => x.name === m.name);
        if (!v || !pred(v) || m.readOnly !== true) continue;
        const sources = v.projected ? v.projected.sources : [v];
        for (const src of sources) {
          const ref = src.secret || src.configMap;
          if (!ref) continue;
          for (const it of ref.items || []) {
            files[`${m.mountPath}/${it.path}`] = { name: ref.name || ref.secretName, key: it.key, kind: src.secret ? 'Secret' : 'ConfigMap', subPath: m.subPath };
          }
        }
      }
      return files;
    };
    const files = volFiles(() => true);
    for (const [flag, key] of [['tls_cert_file', 'tls.crt'], ['tls_key_file', 'tls.key'], ['tls_client_ca_file', 'ca.crt']]) {
      const f = files[arg(c, flag)];
      expect(f && f.kind === 'Secret', `--${flag}=${arg(c, flag)} is not a file from a Secret mounted read-only`);
      if (f && secretName && flag !== 'tls_client_ca_file') expect(f.name === secretName, `--${flag} comes from Secret ${f.name}, not ${secretName}`);
      if (f && key !== 'ca.crt') expect(f.key === key, `--${flag} comes from key ${f.key}`);
    }
    const policy = arg(c, 'caller_policy');
    const pf = files[policy];
    expect(pf && pf.kind === 'ConfigMap' && !pf.subPath, `--caller_policy=${policy} is not a file of a ConfigMap directory mount`);
    expect(!(c.volumeMounts || []).some((m) => m.subPath), 'a volume is mounted with subPath (misses updates)');
    if (!pf) return;
    const cm = byKind(docs, 'ConfigMap').find((x) => x.metadata.name === pf.name);
    if (cm) {
      let doc;
      try { doc = JSON.parse(cm.data[pf.key]); } catch (e) { problems.push(`caller policy is not JSON: ${e.message}`); return; }
      expect(Array.isArray(doc.callers) && Object.keys(doc).length === 1, 'caller policy: only a callers list is allowed');
      for (const e of doc.callers || []) {
        expect(Object.keys(e).sort().join() === 'identity,merchants,methods', `caller policy entry ${JSON.stringify(e)}`);
      }
    }
  },

  // The Ingress routes exactly POST /webhooks/paykka (pathType Exact) to the Service's webhook port,
  // and nothing else: no default backend, no other path or port.
  ingress(docs) {
    const ings = byKind(docs, 'Ingress');
    expect(ings.length === 1, `expected one Ingress, found ${ings.length}`);
    const svc = byKind(docs, 'Service').find((x) => x.spec.clusterIP !== 'None');
    const hookPort = svc.spec.ports.find((p) => p.name === 'webhook').port;
    for (const ing of ings) {
      expect(!ing.spec.defaultBackend, 'the Ingress has a default backend');
      expect((ing.spec.rules || []).length > 0, 'the Ingress has no rules');
      for (const r of ing.spec.rules || []) {
        expect(r.host, 'an Ingress rule without host');
        const paths = (r.http && r.http.paths) || [];
        expect(paths.length === 1, `Ingress rule for ${r.host} has ${paths.length} paths`);
        for (const p of paths) {
          expect(p.path === '/webhooks/paykka' && p.pathType === 'Exact', `Ingress routes ${p.pathType} ${p.path}`);
          const b = p.backend.service || {};
          expect(b.name === svc.metadata.name && (b.port.name === 'webhook' || b.port.number === hookPort),
            `Ingress path ${p.path} goes to ${b.name}:${b.port.name || b.port.number}, not the webhook port`);
        }
      }
    }
  },

  // cert-manager: a server Certificate writes the Secret payorchd mounts (names the Service's DNS
  // names, server auth), and a client Certificate writes the helm test pod's Secret (client auth).
  certManager(docs) {
    const certs = byKind(docs, 'Certificate');
    const ps = podSpec(docs);
    const tlsVol = ps.volumes.find((v) => v.name === 'grpc-tls');
    const serverSecret = tlsVol && tlsVol.projected.sources[0].secret.name;
    const server = certs.find((x) => x.spec.secretName === serverSecret);
    expect(server, `no Certificate writes the server Secret ${serverSecret}`);
    const svc = byKind(docs, 'Service').find((x) => x.spec.clusterIP !== 'None');
    if (server) {
      expect(server.spec.dnsNames.includes(`${svc.metadata.name}.${svc.metadata.namespace}.svc`), 'server Certificate lacks <svc>.<ns>.svc');
      expect(server.spec.usages.includes('server auth'), 'server Certificate without server auth');
      expect(server.spec.issuerRef && server.spec.issuerRef.name, 'server Certificate without issuerRef.name');
    }
    const pod = helmTestPods(docs)[0];
    if (pod) {
      const v = (pod.spec.volumes || []).find((x) => x.secret);
      const client = v && certs.find((x) => x.spec.secretName === v.secret.secretName);
      expect(client, 'no Certificate writes the helm test pod\'s client Secret');
      if (client) expect(client.spec.usages.includes('client auth'), 'test client Certificate without client auth');
    }
  },
};

// Every key in values.yaml is documented by a "# -- " comment (on itself or on the enclosing
// block), and every documented key appears in the chart README's values table.
function valuesDoc(valuesFile, readmeFile) {
  const lines = fs.readFileSync(valuesFile, 'utf8').split('\n');
  const documented = new Set();
  const stack = [];
  let pending = false;
  for (const ln of lines) {
    if (/^\s*# -- /.test(ln)) { pending = true; continue; }
    if (/^\s*#/.test(ln) || !ln.trim()) continue;
    const m = /^(\s*)([A-Za-z][A-Za-z0-9]*):/.exec(ln);
    if (!m) continue;
    const indent = m[1].length;
    while (stack.length && stack[stack.length - 1][0] >= indent) stack.pop();
    stack.push([indent, m[2]]);
    if (pending) documented.add(stack.map((x) => x[1]).join('.'));
    pending = false;
  }
  const values = YAML.parse(fs.readFileSync(valuesFile, 'utf8'));
  const walk = (v, path) => {
    if (documented.has(path)) return;
    if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length) {
      for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k);
    } else {
      problems.push(`values.yaml: ${path} has no "# -- " description`);
    }
  };
  walk(values, '');
  const readme = fs.readFileSync(readmeFile, 'utf8');
  for (const k of documented) expect(readme.includes(`\`${k}\``), `README does not list ${k}`);
  if (!problems.length) console.log(`values: ${documented.size} documented keys, all in the README`);
}

// The PrometheusRule's groups as a Prometheus rules file. --no-annotations drops annotations (for
// promtool unit tests, which compare them verbatim; `promtool check rules` sees them in full).
function rulesFile(file, out, opt) {
  const rule = one(loadDocs(file), 'PrometheusRule');
  const groups = JSON.parse(JSON.stringify(rule.spec.groups));
  if (opt === '--no-annotations') for (const g of groups) for (const r of g.rules) delete r.annotations;
  fs.writeFileSync(out, YAML.stringify({ groups }));
  console.log(`rules: ${groups.reduce((n, g) => n + g.rules.length, 0)} rules written to ${out}`);
}

// The dashboard ConfigMap: valid JSON, a Grafana dashboard whose panels all query the templated
// data source, with unique ids, sane grid positions, and template variables that exist. Every query
// is written (variables substituted) as a recording rule so that promtool parses its PromQL.
function dashboard(file, out) {
  const cms = byKind(loadDocs(file), 'ConfigMap').filter((c) => c.metadata.name.endsWith('-dashboard'));
  if (cms.length !== 1) throw new Error(`expected one dashboard ConfigMap, found ${cms.length}`);
  const [name, text] = Object.entries(cms[0].data).find(([k]) => k.endsWith('.json'));
  let d;
  try { d = JSON.parse(text); } catch (e) { throw new Error(`${name}: not JSON: ${e.message}`); }
  expect(typeof d.title === 'string' && d.title, 'dashboard: no title');
  expect(/^[A-Za-z0-9_-]{1,40}$/.test(d.uid || ''), 'dashboard: uid missing or longer than 40');
  expect(Number.isInteger(d.schemaVersion) && d.schemaVersion >= 30, 'dashboard: schemaVersion missing or old');
  const vars = ((d.templating || {}).list || []).map((v) => v.name);
  for (const v of ['datasource', 'namespace', 'job']) expect(vars.includes(v), `dashboard: no $${v} variable`);
  const ids = new Set();
  const rules = [];
  const subst = (e) => e.replace(/\$__rate_interval|\$__interval|\$__range/g, '5m')
    .replace(/\$\{?(\w+)\}?/g, (m, v) => {
      if (!vars.includes(v)) problems.push(`dashboard: query uses undefined variable $${v}`);
      return 'x';
    });
  const walk = (panels) => {
    for (const p of panels || []) {
      expect(Number.isInteger(p.id) && !ids.has(p.id), `dashboard: panel "${p.title}" id missing or duplicate`);
      ids.add(p.id);
      const g = p.gridPos || {};
      expect([g.x, g.y, g.w, g.h].every(Number.isInteger) && g.x >= 0 && g.x + g.w <= 24 && g.w > 0 && g.h > 0,
        `dashboard: panel "${p.title}" has a bad gridPos`);
      if (p.type === 'row') { walk(p.panels); continue; }
      expect(p.datasource && p.datasource.uid === '${datasource}', `dashboard: panel "${p.title}" does not use $datasource`);
      expect((p.targets || []).length > 0, `dashboard: panel "${p.title}" has no queries`);
      const refs = new Set();
      for (const t of p.targets || []) {
        expect(t.refId && !refs.has(t.refId), `dashboard: panel "${p.title}" refId missing or duplicate`);
        refs.add(t.refId);
        expect(typeof t.expr === 'string' && t.expr.includes('namespace="$namespace"'),
          `dashboard: panel "${p.title}" ${t.refId} does not select $namespace`);
        rules.push({ record: `dashboard:panel_${p.id}_${t.refId}`, expr: subst(t.expr || '') });
      }
    }
  };
  walk(d.panels);
  for (const v of (d.templating || {}).list || []) {
    if (v.type === 'query') rules.push({ record: `dashboard:variable_${v.name}`, expr: subst(v.query.query.replace(/^label_values\((.*),\s*\w+\)$/, '$1')) });
  }
  fs.writeFileSync(out, YAML.stringify({ groups: [{ name: 'dashboard', rules }] }));
  if (!problems.length) console.log(`dashboard: ${ids.size} panels, ${rules.length} queries written to ${out}`);
}

// Every payorch_* metric referenced by the rules files exists (known: names from payorchd's code
// and the ones other work is adding, histograms with their _bucket/_sum/_count series).
function metricNames(knownFile, files) {
  const known = new Set();
  for (const n of fs.readFileSync(knownFile, 'utf8').split(/\s+/).filter(Boolean)) {
    for (const suffix of ['', '_bucket', '_sum', '_count']) known.add(n + suffix);
  }
  const used = new Set();
  for (const f of files) {
    for (const g of YAML.parse(fs.readFileSync(f, 'utf8')).groups) {
      for (const r of g.rules) for (const m of r.expr.matchAll(/\bpayorch_[a-z0-9_]+/g)) used.add(m[0]);
    }
  }
  for (const n of used) expect(known.has(n), `metric ${n} is neither exported by payorchd nor listed as pending`);
  if (!problems.length) console.log(`metrics: ${used.size} payorch_* names used, all known`);
}

function main() {
  const [mode, ...rest] = process.argv.slice(2);
  try {
    if (mode === 'schema') {
      let n = 0;
      for (const f of rest) n += schema(f);
      if (!problems.length) console.log(`schema: ${n} documents valid`);
    } else if (mode === 'values-doc') {
      valuesDoc(rest[0], rest[1]);
    } else if (mode === 'rules-file') {
      rulesFile(rest[0], rest[1], rest[2]);
    } else if (mode === 'dashboard') {
      dashboard(rest[0], rest[1]);
    } else if (mode === 'metric-names') {
      metricNames(rest[0], rest.slice(1));
    } else if (mode === 'assert' && asserts[rest[0]]) {
      const [name, file, ...args] = rest;
      asserts[name](loadDocs(file), ...args);
    } else {
      console.error(`usage: validate.js schema FILE... | values-doc VALUES README | rules-file FILE OUT [--no-annotations] | dashboard FILE OUT | metric-names KNOWN FILE... | assert {${Object.keys(asserts).join('|')}} FILE [ARG]`);
      process.exit(2);
    }
  } catch (e) {
    problems.push(e.message);
  }
  for (const p of problems) console.log(`  problem: ${p}`);
  process.exit(problems.length ? 1 : 0);
}

main();
