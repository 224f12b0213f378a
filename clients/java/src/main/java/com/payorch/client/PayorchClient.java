package com.payorch.client;

import com.payorch.v1.ChargeRecurringRequest;
import com.payorch.v1.ChargeRecurringResponse;
import com.payorch.v1.CreateCheckoutRequest;
import com.payorch.v1.CreateCheckoutResponse;
import com.payorch.v1.GetOrderRequest;
import com.payorch.v1.GetOrderResponse;
import com.payorch.v1.GetSessionStatusRequest;
import com.payorch.v1.GetSessionStatusResponse;
import com.payorch.v1.PaymentOrchestratorGrpc;
import com.payorch.v1.PaymentOrchestratorGrpc.PaymentOrchestratorBlockingStub;
import io.grpc.ChannelCredentials;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsChannelCredentials;
import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.BiFunction;

/**
 * A small Java client for payorch's PaymentOrchestrator API (proto/payorch/v1), on grpc-java.
 * The stubs are generated from proto/ at build time (clients/java/build.sh). On top of them it
 * adds what every caller needs:
 *
 * <ul>
 *   <li>a deadline on every call ({@link Options#callTimeout} per attempt, all attempts within
 *       {@link Options#totalTimeout});
 *   <li>retries of the retryable reasons with the same request (same trans_id), honouring the
 *       server's google.rpc.RetryInfo;
 *   <li>the google.rpc error details decoded ({@link ErrorDetails#of}).
 * </ul>
 *
 * <p>Thread-safe; create one per process and {@link #close} it at shutdown.
 */
public final class PayorchClient implements AutoCloseable {
  /** ErrorInfo reasons after which the same request (same trans_id) may be sent again. */
  public static final Set<String> RETRYABLE_REASONS =
      Set.of(
          "REQUEST_IN_PROGRESS",
          "PSP_OUTCOME_UNKNOWN",
          "PSP_UNAVAILABLE",
          "PSP_RATE_LIMITED",
          "PSP_BAD_RESPONSE",
          "IDEMPOTENCY_STORE_UNAVAILABLE");

  /** Called before each retry, e.g. for logs or metrics. */
  @FunctionalInterface
  public interface RetryListener {
    void onRetry(String method, int attempt, ErrorDetails details, Duration delay);
  }

  /**
   * How the channel authenticates. payorchd requires mTLS: {@link #mtls} with the CAs that sign
   * payorchd's certificate and this caller's certificate and key (PEM files; the key PKCS#8, as
   * scripts/make_mtls_certs.sh and cert-manager write it). {@link #plaintext} only for a payorchd
   * started with --insecure_plaintext, or a mesh sidecar doing TLS; there is no default. On Debian,
   * TLS needs netty-tcnative (OpenSSL) on the classpath and its JNI library on java.library.path
   * (Debian's netty has no JDK ALPN support): see clients/java/build.sh.
   */
  public static final class Security {
    final File caFile;
    final File certFile;
    final File keyFile;

    private Security(File caFile, File certFile, File keyFile) {
      this.caFile = caFile;
      this.certFile = certFile;
      this.keyFile = keyFile;
    }

    public static Security plaintext() {
      return new Security(null, null, null);
    }

    public static Security mtls(String caFile, String certFile, String keyFile) {
      if (caFile == null || certFile == null || keyFile == null
          || caFile.isEmpty() || certFile.isEmpty() || keyFile.isEmpty()) {
        throw new IllegalArgumentException("payorch: mTLS needs a CA file, a certificate and a key");
      }
      return new Security(new File(caFile), new File(certFile), new File(keyFile));
    }

    /**
     * From PAYORCH_CA, PAYORCH_CERT and PAYORCH_KEY (the variables payorchctl and the Python
     * client read), or plaintext when PAYORCH_PLAINTEXT=1.
     */
    public static Security fromEnv() {
      if ("1".equals(System.getenv("PAYORCH_PLAINTEXT"))) {
        return plaintext();
      }
      return mtls(System.getenv("PAYORCH_CA"), System.getenv("PAYORCH_CERT"),
          System.getenv("PAYORCH_KEY"));
    }

    boolean isPlaintext() {
      return caFile == null;
    }
  }

  /** Client options; every setter returns this. */
  public static final class Options {
    Duration callTimeout = Duration.ofSeconds(10);
    Duration totalTimeout = Duration.ofSeconds(60);
    int maxAttempts = 5;
    Duration baseBackoff = Duration.ofMillis(200);
    RetryListener onRetry = (method, attempt, details, delay) -> {};
    Security security;

    /** Deadline of each attempt (default 10 s). */
    public Options callTimeout(Duration d) {
      callTimeout = d;
      return this;
    }

    /** All attempts of one call end within this (default 60 s). */
    public Options totalTimeout(Duration d) {
      totalTimeout = d;
      return this;
    }

    /** Attempts per call, the first included (default 5). */
    public Options maxAttempts(int n) {
      maxAttempts = n;
      return this;
    }

    /** First retry delay without RetryInfo (default 200 ms), doubled per attempt. */
    public Options baseBackoff(Duration d) {
      baseBackoff = d;
      return this;
    }

    public Options onRetry(RetryListener listener) {
      onRetry = listener;
      return this;
    }

    /** Required: how the channel authenticates ({@link Security}). */
    public Options security(Security s) {
      security = s;
      return this;
    }
  }

  private final ManagedChannel channel;
  private final PaymentOrchestratorBlockingStub stub;
  private final Options options;

  /** A client for target ("host:port" or any gRPC target); connects lazily. */
  public PayorchClient(String target, Options options) {
    this.options = options;
    this.channel = Grpc.newChannelBuilder(target, channelCredentials(options.security)).build();
    this.stub = PaymentOrchestratorGrpc.newBlockingStub(channel);
  }

  /** The one place where channel credentials are made. */
  static ChannelCredentials channelCredentials(Security security) {
    if (security == null) {
      throw new IllegalArgumentException(
          "payorch: Options.security is required (Security.mtls(...), or Security.plaintext())");
    }
    if (security.isPlaintext()) {
      return InsecureChannelCredentials.create();
    }
    try {
      return TlsChannelCredentials.newBuilder()
          .trustManager(security.caFile)
          .keyManager(security.certFile, security.keyFile)
          .build();
    } catch (IOException e) {
      throw new UncheckedIOException("payorch: reading the mTLS files", e);
    }
  }

  /** Creates a checkout session. Idempotent on (merchant_id, trans_id). */
  public CreateCheckoutResponse createCheckout(CreateCheckoutRequest request) {
    return invoke("CreateCheckout", request, PaymentOrchestratorBlockingStub::createCheckout);
  }

  /** Charges a stored card. A decline is an order with status FAILURE, not an exception. */
  public ChargeRecurringResponse chargeRecurring(ChargeRecurringRequest request) {
    return invoke("ChargeRecurring", request, PaymentOrchestratorBlockingStub::chargeRecurring);
  }

  /** Reads an order; NOT_FOUND with reason ORDER_NOT_FOUND means "not paid yet". */
  public GetOrderResponse getOrder(GetOrderRequest request) {
    return invoke("GetOrder", request, PaymentOrchestratorBlockingStub::getOrder);
  }

  public GetSessionStatusResponse getSessionStatus(GetSessionStatusRequest request) {
    return invoke("GetSessionStatus", request, PaymentOrchestratorBlockingStub::getSessionStatus);
  }

  private <Q, R> R invoke(
      String method, Q request, BiFunction<PaymentOrchestratorBlockingStub, Q, R> rpc) {
    long end = System.nanoTime() + options.totalTimeout.toNanos();
    for (int attempt = 1; ; attempt++) {
      long attemptNanos = Math.min(options.callTimeout.toNanos(), end - System.nanoTime());
      try {
        return rpc.apply(stub.withDeadlineAfter(attemptNanos, TimeUnit.NANOSECONDS), request);
      } catch (StatusRuntimeException e) {
        ErrorDetails details = ErrorDetails.of(e);
        Duration delay = backoff(attempt, details);
        if (attempt >= options.maxAttempts
            || !retryable(details)
            || System.nanoTime() + delay.toNanos() >= end) {
          throw e;
        }
        options.onRetry.onRetry(method, attempt, details, delay);
        sleep(delay, e);
      }
    }
  }

  static boolean retryable(ErrorDetails d) {
    if (!d.reason().isEmpty()) {
      return RETRYABLE_REASONS.contains(d.reason());
    }
    // No ErrorInfo: the call did not reach payorch (connection refused or reset, or the
    // attempt's own deadline). Every payorch call is safe to resend unchanged.
    return d.code() == Status.Code.UNAVAILABLE || d.code() == Status.Code.DEADLINE_EXCEEDED;
  }

  // At least the server's RetryInfo delay (up to 1.5 times it), else exponential from
  // baseBackoff (0.5 to 1 times it): the jitter keeps callers from retrying in step.
  private Duration backoff(int attempt, ErrorDetails d) {
    double jitter = ThreadLocalRandom.current().nextDouble();
    if (d.retryDelay().isPresent()) {
      return Duration.ofNanos((long) (d.retryDelay().get().toNanos() * (1 + jitter / 2)));
    }
    long base = options.baseBackoff.toNanos() << (attempt - 1);
    return Duration.ofNanos((long) (base * (0.5 + jitter / 2)));
  }

  private static void sleep(Duration delay, StatusRuntimeException cause) {
    try {
      Thread.sleep(delay.toMillis());
    } catch (InterruptedException ie) {
      Thread.currentThread().interrupt();
      throw cause;
    }
  }

  @Override
  public void close() throws InterruptedException {
    channel.shutdown().awaitTermination(5, TimeUnit.SECONDS);
  }
}
