package com.payorch.client;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;
import static org.junit.Assume.assumeTrue;

import com.google.protobuf.Timestamp;
import com.payorch.v1.ChargeRecurringRequest;
import com.payorch.v1.CreateCheckoutRequest;
import com.payorch.v1.CreateCheckoutResponse;
import com.payorch.v1.GetOrderRequest;
import com.payorch.v1.Order;
import com.payorch.v1.OrderStatus;
import com.payorch.v1.PaymentOptions;
import com.payorch.v1.PaymentType;
import com.payorch.v1.SessionMode;
import com.payorch.v1.TokenUsage;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Collectors;
import org.junit.After;
import org.junit.Before;
import org.junit.Test;

/**
 * Integration test against a running stack (redis-server, paykka-sandbox, payorchd).
 * tests/integration/client_libraries_test.cc starts one and runs this class with its addresses in
 * the environment: PAYORCH_TARGET, PAYORCH_SANDBOX_URL, PAYORCH_MERCHANT_ID, PAYORCH_CLIENT_KEY,
 * and payorchd's mTLS material: PAYORCH_CA, PAYORCH_CERT, PAYORCH_KEY (a caller allowed
 * everything) and PAYORCH_LIMITED_CERT, PAYORCH_LIMITED_KEY (allowed CreateCheckout,
 * GetSessionStatus and GetOrder for the merchant only).
 */
public class PayorchClientIT {
  private static final String TARGET = System.getenv("PAYORCH_TARGET");
  private static final String SANDBOX = System.getenv("PAYORCH_SANDBOX_URL");
  private static final String MERCHANT = System.getenv("PAYORCH_MERCHANT_ID");
  private static final String CLIENT_KEY = System.getenv("PAYORCH_CLIENT_KEY");
  private static final AtomicLong SEQ = new AtomicLong();
  private final HttpClient http = HttpClient.newHttpClient();
  private final List<ErrorDetails> retries = new ArrayList<>();
  private PayorchClient client;

  @Before
  public void setUp() {
    assumeTrue("no stack: set PAYORCH_TARGET, PAYORCH_SANDBOX_URL, PAYORCH_MERCHANT_ID",
        TARGET != null && SANDBOX != null && MERCHANT != null);
    client = new PayorchClient(TARGET, new PayorchClient.Options()
        .security(PayorchClient.Security.fromEnv())
        .onRetry((method, attempt, details, delay) -> {
          retries.add(details);
          control("DELETE", "/sandbox/faults", null); // the retry test's fault ends here
        }));
  }

  @After
  public void tearDown() throws Exception {
    if (client != null) {
      client.close();
      control("DELETE", "/sandbox/faults", null);
    }
  }

  /** The sandbox's control API; the response body. */
  private String control(String method, String path, String json) {
    HttpRequest request = HttpRequest.newBuilder(URI.create(SANDBOX + path))
        .timeout(Duration.ofSeconds(10))
        .header("content-type", "application/json")
        .method(method, json == null ? HttpRequest.BodyPublishers.noBody()
            : HttpRequest.BodyPublishers.ofString(json))
        .build();
    try {
      HttpResponse<String> response = http.send(request, HttpResponse.BodyHandlers.ofString());
      assertEquals(method + " " + path + ": " + response.body(), 2, response.statusCode() / 100);
      return response.body();
    } catch (java.io.IOException | InterruptedException e) {
      throw new AssertionError("sandbox " + method + " " + path, e);
    }
  }

  private void pay(String sessionId) {
    control("POST", "/sandbox/sessions/" + sessionId + "/pay", "{\"outcome\":\"SUCCESS\"}");
  }

  private static String transId(String prefix) {
    return prefix + "-" + System.currentTimeMillis() + "-" + SEQ.incrementAndGet();
  }

  private static CreateCheckoutRequest.Builder checkout(String transId) {
    return CreateCheckoutRequest.newBuilder()
        .setMerchantId(MERCHANT)
        .setTransId(transId)
        .setPaymentType(PaymentType.PAYMENT_TYPE_PURCHASE)
        .setSessionMode(SessionMode.SESSION_MODE_DROP_IN)
        .setAmount(1999)
        .setCurrency("USD")
        .setReturnUrl("https://shop.example/return")
        .setExpireTime(Timestamp.newBuilder()
            .setSeconds(Instant.now().plus(Duration.ofMinutes(30)).getEpochSecond()));
  }

  @Test
  public void checkoutPayGetOrderAndReplay() {
    CreateCheckoutRequest request = checkout(transId("java")).build();
    CreateCheckoutResponse created = client.createCheckout(request);
    assertTrue(created.getSessionId(), created.getSessionId().startsWith("CS"));
    assertEquals(CLIENT_KEY, created.getClientKey());
    pay(created.getSessionId());

    Order order = client.getOrder(GetOrderRequest.newBuilder()
        .setMerchantId(MERCHANT).setTransId(request.getTransId()).build()).getOrder();
    assertEquals(OrderStatus.ORDER_STATUS_SUCCESS, order.getStatus());
    assertEquals(1999, order.getAmount());
    assertEquals(created.getSessionId(), order.getSessionId());

    assertEquals(created.getSessionId(), client.createCheckout(request).getSessionId());
  }

  @Test
  public void invalidRequestReportsEveryFieldViolation() {
    try {
      client.createCheckout(checkout(transId("javabad")).setAmount(0).setCurrency("EURO").build());
      fail("an invalid request succeeded");
    } catch (StatusRuntimeException e) {
      ErrorDetails d = ErrorDetails.of(e);
      assertEquals(Status.Code.INVALID_ARGUMENT, d.code());
      assertEquals("INVALID_FIELD", d.reason());
      assertEquals("payorch", d.domain());
      Set<String> fields = d.fieldViolations().stream()
          .map(ErrorDetails.FieldViolation::field).collect(Collectors.toSet());
      assertTrue(fields.toString(), fields.contains("amount") && fields.contains("currency"));
      assertTrue(d.fieldViolations().stream().noneMatch(v -> v.description().isEmpty()));
    }
    assertTrue("an invalid request was retried", retries.isEmpty());
  }

  @Test
  public void chargeRecurringAfterAFirstRecurringPayment() throws Exception {
    CreateCheckoutResponse created = client.createCheckout(checkout(transId("javarec"))
        .setPaymentType(PaymentType.PAYMENT_TYPE_RECURRING)
        .setPayment(PaymentOptions.newBuilder().setStorePaymentMethod(true)
            .setTokenUsage(TokenUsage.TOKEN_USAGE_SUBSCRIPTION).setShopperReference("shopper-java"))
        .build());
    pay(created.getSessionId());
    Order paid = client.getOrder(GetOrderRequest.newBuilder()
        .setMerchantId(MERCHANT).setSessionId(created.getSessionId()).build()).getOrder();
    assertFalse(paid.toString(), paid.getToken().isEmpty() || paid.getRecurringAgreementId().isEmpty());

    ChargeRecurringRequest charge = ChargeRecurringRequest.newBuilder()
        .setMerchantId(MERCHANT).setTransId(transId("javacharge")).setAmount(990).setCurrency("USD")
        .setRecurringAgreementId(paid.getRecurringAgreementId())
        .setPayment(PaymentOptions.newBuilder().setToken(paid.getToken())
            .setShopperReference("shopper-java"))
        .build();
    Order order = client.chargeRecurring(charge).getOrder();
    assertEquals(OrderStatus.ORDER_STATUS_SUCCESS, order.getStatus());
    assertEquals(990, order.getAmount());
    assertEquals(order.getOrderId(), client.chargeRecurring(charge).getOrder().getOrderId());

    // The same order and a charge as the limited caller, identified by its own client
    // certificate: no stored-card fields, and ChargeRecurring refused.
    try (PayorchClient limited = new PayorchClient(TARGET, new PayorchClient.Options()
        .maxAttempts(1)
        .security(PayorchClient.Security.mtls(System.getenv("PAYORCH_CA"),
            System.getenv("PAYORCH_LIMITED_CERT"), System.getenv("PAYORCH_LIMITED_KEY"))))) {
      Order seen = limited.getOrder(GetOrderRequest.newBuilder()
          .setMerchantId(MERCHANT).setSessionId(created.getSessionId()).build()).getOrder();
      assertEquals(OrderStatus.ORDER_STATUS_SUCCESS, seen.getStatus());
      assertTrue(seen.toString(), seen.getToken().isEmpty() && seen.getRecurringAgreementId().isEmpty());
      try {
        limited.chargeRecurring(charge.toBuilder().setTransId(transId("javadenied")).build());
        fail("ChargeRecurring succeeded for a caller not allowed to charge");
      } catch (StatusRuntimeException e) {
        ErrorDetails d = ErrorDetails.of(e);
        assertEquals(Status.Code.PERMISSION_DENIED, d.code());
        assertEquals("CALLER_NOT_AUTHORIZED", d.reason());
      }
    }
  }

  /** payorchd requires a client certificate: a plaintext channel never gets a call through. */
  @Test
  public void callerWithoutCertificateIsRefused() throws Exception {
    try {
      new PayorchClient(TARGET, new PayorchClient.Options()).close();
      fail("a client without Options.security was made");
    } catch (IllegalArgumentException expected) {
      assertTrue(expected.getMessage(), expected.getMessage().contains("security"));
    }
    try (PayorchClient plain = new PayorchClient(TARGET, new PayorchClient.Options()
        .maxAttempts(1).callTimeout(Duration.ofSeconds(5))
        .security(PayorchClient.Security.plaintext()))) {
      plain.getOrder(GetOrderRequest.newBuilder()
          .setMerchantId(MERCHANT).setTransId(transId("javaplain")).build());
      fail("a plaintext call reached the mTLS port");
    } catch (StatusRuntimeException e) {
      assertEquals(Status.Code.UNAVAILABLE, ErrorDetails.of(e).code());
    }
  }

  /** PayKKa fails (503) until the first retry: one retry, same trans_id, one session. */
  @Test
  public void retriesTheSameTransIdAfterARetryableFailure() {
    control("PUT", "/sandbox/faults", "{\"rules\":[{\"endpoint\":\"/v3/payment/acq/session\","
        + "\"http_status\":503,\"error_rate\":1.0}]}");
    CreateCheckoutRequest request = checkout(transId("javaretry")).build();
    CreateCheckoutResponse created = client.createCheckout(request);
    assertTrue(created.getSessionId().startsWith("CS"));
    assertEquals(retries.toString(), 1, retries.size());
    assertEquals(Status.Code.UNAVAILABLE, retries.get(0).code());
    assertTrue(retries.get(0).reason(),
        PayorchClient.RETRYABLE_REASONS.contains(retries.get(0).reason()));
    String counters = control("GET", "/sandbox/counters", null);
    assertTrue(counters, counters.replace(" ", "")
        .matches("(?s).*\"creates_by_trans_id\":\\{[^}]*\"" + request.getTransId() + "\":1[,}].*"));
    assertNotNull(created);
  }
}
