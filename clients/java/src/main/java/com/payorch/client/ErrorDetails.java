package com.payorch.client;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import com.google.rpc.RetryInfo;
import io.grpc.Status;
import io.grpc.protobuf.StatusProto;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A failed call's gRPC status with its google.rpc details decoded. payorch sends exactly one
 * ErrorInfo (domain "payorch"); branch on {@link #reason}, never on the message.
 *
 * @param reason ErrorInfo reason (README, "Errors"); empty when the call never reached payorch
 * @param metadata ErrorInfo metadata, e.g. psp_ret_code for PSP_REJECTED
 * @param retryDelay RetryInfo: how long to wait before retrying
 * @param fieldViolations BadRequest: every invalid field with its path, e.g. "payment.token"
 */
public record ErrorDetails(
    Status.Code code,
    String message,
    String reason,
    String domain,
    Map<String, String> metadata,
    Optional<Duration> retryDelay,
    List<FieldViolation> fieldViolations) {

  /** One google.rpc.BadRequest entry. */
  public record FieldViolation(String field, String description) {}

  /** Decodes the status and details of a failed call (any Throwable carrying a gRPC status). */
  public static ErrorDetails of(Throwable t) {
    Status status = Status.fromThrowable(t);
    String reason = "";
    String domain = "";
    Map<String, String> metadata = Map.of();
    Optional<Duration> retryDelay = Optional.empty();
    List<FieldViolation> violations = new ArrayList<>();
    com.google.rpc.Status rpc = StatusProto.fromThrowable(t);
    for (Any any : rpc == null ? List.<Any>of() : rpc.getDetailsList()) {
      try {
        if (any.is(ErrorInfo.class)) {
          ErrorInfo info = any.unpack(ErrorInfo.class);
          reason = info.getReason();
          domain = info.getDomain();
          metadata = info.getMetadataMap();
        } else if (any.is(RetryInfo.class)) {
          com.google.protobuf.Duration d = any.unpack(RetryInfo.class).getRetryDelay();
          retryDelay = Optional.of(Duration.ofSeconds(d.getSeconds(), d.getNanos()));
        } else if (any.is(BadRequest.class)) {
          for (BadRequest.FieldViolation v : any.unpack(BadRequest.class).getFieldViolationsList()) {
            violations.add(new FieldViolation(v.getField(), v.getDescription()));
          }
        }
      } catch (InvalidProtocolBufferException e) {
        // A malformed detail is ignored; the status code still stands.
      }
    }
    return new ErrorDetails(
        status.getCode(),
        status.getDescription() == null ? "" : status.getDescription(),
        reason,
        domain,
        metadata,
        retryDelay,
        List.copyOf(violations));
  }
}
