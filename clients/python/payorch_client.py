#!/usr/bin/python3
"""A payorch client in Python (Debian's python3-grpcio), for services written in Python.

It shows the three things every caller needs: a deadline on each call, the same trans_id on
every retry of a mutating call, and reading the google.rpc ErrorInfo reason of a failure.

Stubs are generated at build time into <build>/gen/python (see clients/CMakeLists.txt); point
PYTHONPATH there, or pass --gen-dir.

  payorch_client.py --target 127.0.0.1:50051 checkout --merchant-id M1 --trans-id order-1 \
      --amount 1999 --currency USD
  payorch_client.py --target 127.0.0.1:50051 order --merchant-id M1 --trans-id order-1
  payorch_client.py --target 127.0.0.1:50051 watch --merchant-id M1 --session-id CS1
  payorch_client.py --target 127.0.0.1:50051 watch --merchant-id M1 [--resume-token T]
"""
import argparse
import json
import os
import random
import sys
import time


def load_stubs(gen_dir):
    if gen_dir:
        sys.path.insert(0, gen_dir)
    global grpc, pb, pb_grpc, status_pb2, error_details_pb2, json_format
    import grpc  # noqa: F401
    from google.protobuf import json_format  # noqa: F401
    from google.rpc import error_details_pb2, status_pb2  # noqa: F401
    from payorch.v1 import payorch_pb2 as pb  # noqa: F401
    from payorch.v1 import payorch_pb2_grpc as pb_grpc  # noqa: F401


def error_info(err):
    """(reason, retry_delay_seconds or None, field violations) of a failed call."""
    reason, delay, violations = "", None, []
    for key, value in err.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        for any_msg in status.details:
            info = error_details_pb2.ErrorInfo()
            retry = error_details_pb2.RetryInfo()
            bad = error_details_pb2.BadRequest()
            if any_msg.Unpack(info):
                reason = info.reason
            elif any_msg.Unpack(retry):
                delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
            elif any_msg.Unpack(bad):
                violations = [(v.field, v.description) for v in bad.field_violations]
    return reason, delay, violations


# Reasons after which the same request may be sent again (with the same trans_id).
RETRYABLE = {"REQUEST_IN_PROGRESS", "PSP_OUTCOME_UNKNOWN", "PSP_UNAVAILABLE",
             "PSP_RATE_LIMITED", "PSP_BAD_RESPONSE", "IDEMPOTENCY_STORE_UNAVAILABLE"}


def call_with_retries(rpc, request, attempts=5, timeout=20.0):
    """Calls `rpc`; retries what payorch says is retryable, honouring RetryInfo."""
    for attempt in range(attempts):
        try:
            return rpc(request, timeout=timeout)
        except grpc.RpcError as err:
            reason, delay, _ = error_info(err)
            if reason not in RETRYABLE or attempt == attempts - 1:
                raise
            backoff = delay if delay is not None else 0.2 * 2 ** attempt
            time.sleep(backoff * (0.5 + random.random() / 2))


# A merchant's event stream may end for reasons a reconnect with the last token fixes.
RESUMABLE = {"EVENT_LOG_UNAVAILABLE", "CONSUMER_TOO_SLOW", "OVERLOADED"}


def merchant_events(stub, merchant_id, resume_token="", max_reconnects=10):
    """Yields a merchant's events forever, reconnecting with the last resume_token.

    Nothing is missed or repeated across reconnects within the retention; OUT_OF_RANGE
    (RESUME_TOKEN_EXPIRED) is raised: resync with GetOrder, then watch without a token.
    """
    reconnects = 0
    while True:
        request = pb.WatchMerchantEventsRequest(merchant_id=merchant_id,
                                                resume_token=resume_token)
        try:
            for event in stub.WatchMerchantEvents(request):
                resume_token = event.resume_token
                reconnects = 0
                yield event
            return
        except grpc.RpcError as err:
            reason, delay, _ = error_info(err)
            retryable = reason in RESUMABLE or (
                err.code() == grpc.StatusCode.UNAVAILABLE and not reason)
            if not retryable or reconnects >= max_reconnects:
                raise
            reconnects += 1
            time.sleep((delay or 0.5) * (0.5 + random.random() / 2))


def watch(stub, args):
    """Prints one JSON line per message: an order's changes, or a merchant's events."""
    if args.session_id or args.trans_id or args.order_id:
        request = pb.WatchOrderRequest(merchant_id=args.merchant_id)
        if args.order_id:
            request.order_id = args.order_id
        elif args.session_id:
            request.session_id = args.session_id
        else:
            request.trans_id = args.trans_id
        stream = stub.WatchOrder(request)
    else:
        stream = merchant_events(stub, args.merchant_id, args.resume_token or "")
    for message in stream:
        print(json.dumps(to_json(message)), flush=True)


def to_json(message):
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def read_file(path):
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def make_channel(args):
    """mTLS to payorchd (--ca, --cert, --key), or plaintext with --plaintext."""
    if args.plaintext:
        return grpc.insecure_channel(args.target)
    creds = grpc.ssl_channel_credentials(
        root_certificates=read_file(args.ca), private_key=read_file(args.key),
        certificate_chain=read_file(args.cert))
    return grpc.secure_channel(args.target, creds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--gen-dir", default=os.environ.get("PAYORCH_PY_GEN"))
    parser.add_argument("--ca", default=os.environ.get("PAYORCH_CA"),
                        help="PEM CA that signs payorchd's certificate")
    parser.add_argument("--cert", default=os.environ.get("PAYORCH_CERT"),
                        help="PEM client certificate (the caller's identity)")
    parser.add_argument("--key", default=os.environ.get("PAYORCH_KEY"),
                        help="PEM private key of --cert")
    parser.add_argument("--plaintext", action="store_true",
                        help="no TLS (payorchd --insecure_plaintext)")
    sub = parser.add_subparsers(dest="command", required=True)
    checkout = sub.add_parser("checkout", help="CreateCheckout (Drop-in, purchase)")
    order = sub.add_parser("order", help="GetOrder by trans_id or session_id")
    watching = sub.add_parser(
        "watch", help="WatchOrder (with an id), else WatchMerchantEvents")
    for p in (checkout, order, watching):
        p.add_argument("--merchant-id", required=True)
        p.add_argument("--trans-id")
    for p in (order, watching):
        p.add_argument("--session-id")
    watching.add_argument("--order-id")
    watching.add_argument("--resume-token")
    checkout.add_argument("--amount", type=int, required=True, help="minor units")
    checkout.add_argument("--currency", required=True)
    checkout.add_argument("--return-url", default="https://shop.example/return")
    args = parser.parse_args()
    load_stubs(args.gen_dir)

    stub = pb_grpc.PaymentOrchestratorStub(make_channel(args))
    try:
        if args.command == "checkout":
            request = pb.CreateCheckoutRequest(
                merchant_id=args.merchant_id, trans_id=args.trans_id,
                payment_type=pb.PAYMENT_TYPE_PURCHASE, session_mode=pb.SESSION_MODE_DROP_IN,
                amount=args.amount, currency=args.currency, return_url=args.return_url)
            response = call_with_retries(stub.CreateCheckout, request)
        elif args.command == "watch":
            watch(stub, args)
            return 0
        else:
            request = pb.GetOrderRequest(merchant_id=args.merchant_id)
            if args.session_id:
                request.session_id = args.session_id
            else:
                request.trans_id = args.trans_id
            response = call_with_retries(stub.GetOrder, request)
    except grpc.RpcError as err:
        reason, delay, violations = error_info(err)
        print(json.dumps({"code": err.code().name, "reason": reason, "message": err.details(),
                          "retry_delay_s": delay, "field_violations": violations}))
        return 1
    print(json.dumps(to_json(response)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
