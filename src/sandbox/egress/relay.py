# The egress relay, started by the sandbox's guardian (root, outside the user's reach): the
# container has no network of its own, so HTTP_PROXY points here. Each accepted connection is
# handed over to the egress proxy (its socket passed on the handoff socket, mounted from the
# host), which then serves the client itself: no byte of it passes through here. Where a socket
# cannot be handed over, its bytes are copied to the proxy's own socket instead.
import socket, threading
_DIR = "/run/assistd-egress/"
_handoff = None
def _hand_over(client):
    global _handoff
    for _ in range(2):
        try:
            if _handoff is None:
                _handoff = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                _handoff.settimeout(5)
                _handoff.connect(_DIR + "handoff.sock")
            socket.send_fds(_handoff, [b"\0"], [client.fileno()])
            return True
        except OSError:
            if _handoff is not None:
                _handoff.close()
            _handoff = None
    return False
def _pipe(src, dst):
    buf = bytearray(256 * 1024)
    view = memoryview(buf)
    try:
        while True:
            n = src.recv_into(buf)
            if not n:
                break
            dst.sendall(view[:n])
    except OSError:
        pass
    for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
        try:
            s.shutdown(how)
        except OSError:
            pass
def _relay(client):
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(_DIR + "proxy.sock")
    except OSError:
        client.close()
        upstream.close()
        return
    t = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
    t.start()
    _pipe(client, upstream)
    t.join()
    client.close()
    upstream.close()
def _serve(listener):
    while True:
        try:
            client, _ = listener.accept()
            if _hand_over(client):
                client.close()
                continue
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=_relay, args=(client,), daemon=True).start()
        except (OSError, RuntimeError):
            pass
# Bound before any user code runs, so nothing else can take the port.
_listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
_listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
_listener.bind(("127.0.0.1", 3128))
_listener.listen(128)
threading.Thread(target=_serve, args=(_listener,), daemon=True).start()
