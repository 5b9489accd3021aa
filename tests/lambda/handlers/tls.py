"""TLS as an ordinary handler does it: the default context with the host's
CA bundle, and a handshake with an HTTPS server of its own on 127.0.0.1
whose self-signed certificate (cert.pem, key.pem) is packed beside it."""

import socket
import ssl
import threading


def serve(listener, server_context, connections):
    for _ in range(connections):
        connection, _ = listener.accept()
        try:
            with server_context.wrap_socket(connection, server_side=True) as tls:
                tls.sendall(b"hello over tls")
        except (ssl.SSLError, OSError):
            pass  # the client refused our certificate
        finally:
            connection.close()


def connect(port, context):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.recv(100).decode()


def handler(event, context):
    default = ssl.create_default_context()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain("cert.pem", "key.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)
    server = threading.Thread(target=serve, args=(listener, server_context, 2))
    server.start()
    port = listener.getsockname()[1]
    try:
        connect(port, default)
        default_outcome = "verified"
    except ssl.SSLCertVerificationError as e:
        default_outcome = f"{e.reason}: {e.verify_message}"
    pinned = ssl.create_default_context(cafile="cert.pem")
    pinned_answer = connect(port, pinned)
    server.join()
    listener.close()
    return {
        "default_ca_count": default.cert_store_stats()["x509_ca"],
        "default_outcome": default_outcome,
        "pinned_answer": pinned_answer,
    }
