"""The C ABI from Python through ctypes (standard library only): open a
queue, publish, subscribe, take the message, read its body, ack, close.

Usage: python3 roundtrip.py LIBRARY DIR
"""

import ctypes
import sys

SYNCMQ_OK = 0
SYNCMQ_E_TIMEOUT = -6


def load(path):
    lib = ctypes.CDLL(path)
    handle = ctypes.c_void_p
    lib.syncmq_queue_open.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(handle)]
    lib.syncmq_queue_open.restype = ctypes.c_int
    lib.syncmq_queue_publish.argtypes = [handle, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.syncmq_queue_publish.restype = ctypes.c_int
    lib.syncmq_queue_close.argtypes = [handle]
    lib.syncmq_queue_close.restype = ctypes.c_int
    lib.syncmq_subscriber_open.argtypes = [handle, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(handle)]
    lib.syncmq_subscriber_open.restype = ctypes.c_int
    lib.syncmq_subscriber_next.argtypes = [handle, ctypes.c_int64, ctypes.POINTER(handle)]
    lib.syncmq_subscriber_next.restype = ctypes.c_int
    lib.syncmq_subscriber_close.argtypes = [handle]
    lib.syncmq_subscriber_close.restype = None
    lib.syncmq_delivery_body.argtypes = [handle, ctypes.POINTER(ctypes.c_size_t)]
    lib.syncmq_delivery_body.restype = ctypes.POINTER(ctypes.c_uint8)
    lib.syncmq_delivery_ack.argtypes = [handle]
    lib.syncmq_delivery_ack.restype = ctypes.c_int
    lib.syncmq_last_error.argtypes = []
    lib.syncmq_last_error.restype = ctypes.c_char_p
    return lib


def check(lib, rc, what):
    if rc != SYNCMQ_OK:
        error = lib.syncmq_last_error().decode()
        sys.exit(f"roundtrip.py: FAILED: {what} returned {rc}: {error}")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: roundtrip.py LIBRARY DIR")
    lib = load(sys.argv[1])
    config = b'{"topics":[{"name":"orders","subscribers":["billing"]}]}'
    queue = ctypes.c_void_p()
    check(lib, lib.syncmq_queue_open(sys.argv[2].encode(), config, ctypes.byref(queue)), "open")
    body = b"order \x00 1"  # bytes, a NUL included
    check(lib, lib.syncmq_queue_publish(queue, b"orders", body, len(body)), "publish")

    sub = ctypes.c_void_p()
    check(lib, lib.syncmq_subscriber_open(queue, b"orders", b"billing", ctypes.byref(sub)), "subscribe")
    delivery = ctypes.c_void_p()
    check(lib, lib.syncmq_subscriber_next(sub, 1000, ctypes.byref(delivery)), "next")
    length = ctypes.c_size_t()
    data = lib.syncmq_delivery_body(delivery, ctypes.byref(length))
    got = ctypes.string_at(data, length.value)
    if got != body:
        sys.exit(f"roundtrip.py: FAILED: body {got!r}, want {body!r}")
    check(lib, lib.syncmq_delivery_ack(delivery), "ack")

    rc = lib.syncmq_subscriber_next(sub, 0, ctypes.byref(delivery))
    if rc != SYNCMQ_E_TIMEOUT:
        sys.exit(f"roundtrip.py: FAILED: next on an empty queue returned {rc}")
    lib.syncmq_subscriber_close(sub)
    check(lib, lib.syncmq_queue_close(queue), "close")
    print("roundtrip.py: ok")


if __name__ == "__main__":
    main()
