'use strict';
// A small Node.js client for payorch's PaymentOrchestrator API (proto/payorch/v1), on
// @grpc/grpc-js. Stubs are generated from proto/ when this module loads (@grpc/proto-loader),
// so nothing generated is committed. On top of the stubs it adds what every caller needs:
//  - a deadline on every call (callTimeoutMs per attempt, bounded by the caller's deadline);
//  - retries of the retryable reasons with the same request (same trans_id), honouring the
//    server's google.rpc.RetryInfo;
//  - the google.rpc error details decoded (errorDetails): ErrorInfo, RetryInfo, BadRequest.
//
//   const { PayorchClient } = require('./payorch');
//   const client = new PayorchClient('payorch.payments.svc:50051', {
//     security: { caFile: 'ca.pem', certFile: 'client.pem', keyFile: 'client.key' } });
//   const session = await client.createCheckout({ merchant_id: 'M1', trans_id: 'order-1', ... });

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

// proto/ of this repository; google/rpc/*.proto from Debian's golang-github-gogo-googleapis-dev.
const PROTO_DIR = process.env.PAYORCH_PROTO_DIR || path.resolve(__dirname, '../../proto');
const GOOGLEAPIS_DIR = process.env.PAYORCH_GOOGLEAPIS_PROTO_DIR ||
  '/usr/share/gocode/src/github.com/gogo/googleapis';

const packageDefinition = protoLoader.loadSync('payorch/v1/payorch.proto', {
  includeDirs: [PROTO_DIR],
  keepCase: true, // field names as in the .proto (snake_case)
  longs: String, // int64 (amounts) as decimal strings: no precision loss
  enums: String, // enum values by name, e.g. 'ORDER_STATUS_SUCCESS'
  defaults: true,
  oneofs: true,
});
const v1 = grpc.loadPackageDefinition(packageDefinition).payorch.v1;

const rpcTypes = new protobuf.Root();
rpcTypes.resolvePath = (_origin, target) =>
  target.startsWith('google/protobuf/') ? target : path.join(GOOGLEAPIS_DIR, target);
rpcTypes.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto']);
const StatusType = rpcTypes.lookupType('google.rpc.Status');

// ErrorInfo reasons after which the same request (same trans_id, same content) may be sent again.
const RETRYABLE_REASONS = new Set([
  'REQUEST_IN_PROGRESS', 'PSP_OUTCOME_UNKNOWN', 'PSP_UNAVAILABLE', 'PSP_RATE_LIMITED',
  'PSP_BAD_RESPONSE', 'IDEMPOTENCY_STORE_UNAVAILABLE',
]);

// The one place where channel credentials are made. payorchd requires mTLS: `security` is
// { caFile, certFile, keyFile } (PEM files: the CAs that sign payorchd's certificate, this caller's
// certificate and key), optionally serverName (the name checked in payorchd's certificate instead of
// the target's host). Plaintext only when asked for: { plaintext: true } (a payorchd started with
// --insecure_plaintext, or a mesh sidecar doing TLS). Returns [credentials, channel options].
function channelCredentials(security = {}) {
  const { caFile, certFile, keyFile, serverName, plaintext, ...unknown } = security;
  if (Object.keys(unknown).length) throw new Error(`payorch: unknown security options ${Object.keys(unknown)}`);
  if (plaintext) {
    if (caFile || certFile || keyFile) throw new Error('payorch: plaintext excludes caFile, certFile and keyFile');
    return [grpc.credentials.createInsecure(), {}];
  }
  if (!caFile || !certFile || !keyFile) {
    throw new Error('payorch: security needs caFile, certFile and keyFile (mTLS), or plaintext: true');
  }
  const creds = grpc.credentials.createSsl(fs.readFileSync(caFile), fs.readFileSync(keyFile),
    fs.readFileSync(certFile));
  return [creds, serverName ? { 'grpc.ssl_target_name_override': serverName } : {}];
}

// Security options from PAYORCH_CA, PAYORCH_CERT and PAYORCH_KEY (the variables payorchctl and the
// Python client read), or PAYORCH_PLAINTEXT=1.
function securityFromEnv(env = process.env) {
  if (env.PAYORCH_PLAINTEXT === '1') return { plaintext: true };
  return { caFile: env.PAYORCH_CA, certFile: env.PAYORCH_CERT, keyFile: env.PAYORCH_KEY };
}

// A failed call's status with its google.rpc details decoded:
// { code, codeName, message, reason, domain, metadata, retryDelayMs (null if no RetryInfo),
//   fieldViolations: [{ field, description }] }. null when err is not a gRPC error.
function errorDetails(err) {
  if (!err || typeof err.code !== 'number') return null;
  const d = {
    code: err.code, codeName: grpc.status[err.code], message: err.details || '', reason: '',
    domain: '', metadata: {}, retryDelayMs: null, fieldViolations: [],
  };
  const raw = err.metadata ? err.metadata.get('grpc-status-details-bin') : [];
  if (!raw.length) return d;
  for (const any of StatusType.decode(raw[0]).details) {
    const typeName = any.type_url.slice(any.type_url.lastIndexOf('/') + 1);
    let type;
    try { type = rpcTypes.lookupType(typeName); } catch { continue; } // a detail we do not know
    const m = type.toObject(type.decode(any.value), { longs: Number, defaults: true });
    if (typeName === 'google.rpc.ErrorInfo') {
      Object.assign(d, { reason: m.reason, domain: m.domain, metadata: m.metadata });
    } else if (typeName === 'google.rpc.RetryInfo') {
      const delay = m.retryDelay || { seconds: 0, nanos: 0 };
      d.retryDelayMs = delay.seconds * 1000 + delay.nanos / 1e6;
    } else if (typeName === 'google.rpc.BadRequest') {
      d.fieldViolations = m.fieldViolations.map(({ field, description }) => ({ field, description }));
    }
  }
  return d;
}

function isRetryable(d) {
  if (!d) return false;
  if (d.reason) return RETRYABLE_REASONS.has(d.reason);
  // No ErrorInfo: the call did not reach payorch (connection refused or reset, or the attempt's
  // own deadline). Every payorch call is safe to resend unchanged.
  return d.code === grpc.status.UNAVAILABLE || d.code === grpc.status.DEADLINE_EXCEEDED;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class PayorchClient {
  // options: callTimeoutMs (per attempt, default 10000), maxAttempts (default 5),
  // baseBackoffMs (default 200, doubled per attempt when there is no RetryInfo),
  // onRetry(method, attempt, details, delayMs), security (see channelCredentials).
  constructor(target, options = {}) {
    this.options = { callTimeoutMs: 10000, maxAttempts: 5, baseBackoffMs: 200, ...options };
    const [creds, channelOptions] = channelCredentials(options.security);
    this.stub = new v1.PaymentOrchestrator(target, creds, channelOptions);
  }

  close() { this.stub.close(); }

  // Each method takes the request as a plain object with the .proto's field names and, optionally,
  // { deadline: Date } bounding all attempts; it resolves to the response or rejects with the
  // last gRPC error (use errorDetails on it).
  createCheckout(request, callOptions) { return this.#invoke('CreateCheckout', request, callOptions); }
  chargeRecurring(request, callOptions) { return this.#invoke('ChargeRecurring', request, callOptions); }
  getOrder(request, callOptions) { return this.#invoke('GetOrder', request, callOptions); }
  getSessionStatus(request, callOptions) { return this.#invoke('GetSessionStatus', request, callOptions); }

  async #invoke(method, request, { deadline } = {}) {
    const end = deadline ? deadline.getTime() : Infinity;
    for (let attempt = 1; ; attempt++) {
      const attemptDeadline = new Date(Math.min(end, Date.now() + this.options.callTimeoutMs));
      try {
        return await this.#unary(method, request, attemptDeadline);
      } catch (err) {
        const d = errorDetails(err);
        if (attempt >= this.options.maxAttempts || !isRetryable(d)) throw err;
        const delay = this.#backoff(attempt, d);
        if (Date.now() + delay >= end) throw err; // no time left for another attempt
        if (this.options.onRetry) await this.options.onRetry(method, attempt, d, delay);
        await sleep(delay);
      }
    }
  }

  #unary(method, request, deadline) {
    return new Promise((resolve, reject) => {
      this.stub[method](request, { deadline }, (err, response) => (err ? reject(err) : resolve(response)));
    });
  }

  // At least the server's RetryInfo delay (up to 1.5 times it), else exponential from
  // baseBackoffMs (0.5 to 1 times it): the jitter keeps callers from retrying in step.
  #backoff(attempt, d) {
    if (d.retryDelayMs !== null) return d.retryDelayMs * (1 + Math.random() / 2);
    return this.options.baseBackoffMs * 2 ** (attempt - 1) * (0.5 + Math.random() / 2);
  }
}

module.exports = { PayorchClient, errorDetails, channelCredentials, securityFromEnv, RETRYABLE_REASONS };
