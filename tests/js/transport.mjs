// A capnp-es RPC transport over a stream socket, speaking Cap'n Proto's
// standard stream framing (what kj's TwoPartyVatNetwork reads and writes):
//   u32 segmentCount-1, u32 size (in words) per segment, padding to 8 bytes,
//   then the segments.
//
// capnp-es ships DeferredTransport, but it holds one pending receive and drops
// any message that arrives while the connection is still handling the
// previous one; a socket read often carries several frames, so this one
// queues them.
import { Message } from "capnp-es";
import { Message as RpcMessage } from "capnp-es/capnp/rpc";

// Far above anything thatchd sends; a frame past these is a framing bug, and
// waiting for its body would only hang.
const MAX_SEGMENTS = 512;
const MAX_FRAME_BYTES = 256 * 1024 * 1024;

export class StreamTransport {
  #socket;
  #chunks = [];      // received bytes not yet framed
  #buffered = 0;
  #queue = [];       // whole messages nobody asked for yet
  #waiter = null;    // {resolve, reject} of the one recvMessage() in flight
  #closedError = undefined;
  #closed = false;

  // onClose(error | undefined): the peer went away (error) or close() was called.
  constructor(socket, onClose = () => {}) {
    this.#socket = socket;
    socket.on("data", (chunk) => this.#onData(chunk));
    socket.on("error", (err) => this.#finish(new Error(`socket: ${err.message}`), onClose));
    socket.on("close", () =>
      this.#finish(new Error("thatchd closed the connection"), onClose));
  }

  sendMessage(msg) {
    if (this.#closed) throw this.#closedError ?? new Error("transport closed");
    this.#socket.write(new Uint8Array(msg.segment.message.toArrayBuffer()));
  }

  recvMessage() {
    if (this.#queue.length > 0) return Promise.resolve(this.#queue.shift());
    // capnp-es's Conn stops its receive loop quietly on an undefined rejection
    // and reports anything else through its onError.
    if (this.#closed) return Promise.reject(this.#closedError);
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.end();
    this.#wake(undefined);
  }

  #finish(error, onClose) {
    if (!this.#closed) {
      this.#closed = true;
      this.#closedError = error;
      this.#wake(error);
      onClose(error);
    }
  }

  #wake(error) {
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.reject(error);
  }

  #onData(chunk) {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    try {
      for (let frame; (frame = this.#takeFrame()) !== null; ) {
        const msg = new Message(frame, false).getRoot(RpcMessage);
        if (this.#waiter) {
          const waiter = this.#waiter;
          this.#waiter = null;
          waiter.resolve(msg);
        } else {
          this.#queue.push(msg);
        }
      }
    } catch (err) {
      this.#socket.destroy();
      this.#finish(new Error(`bad frame from thatchd: ${err.message}`), () => {});
    }
  }

  // The next whole frame, or null until more bytes arrive.
  #takeFrame() {
    if (this.#buffered < 8) return null;
    const data = this.#chunks.length === 1 ? this.#chunks[0] : Buffer.concat(this.#chunks);
    this.#chunks = [data];
    const segments = data.readUInt32LE(0) + 1;
    if (segments > MAX_SEGMENTS) throw new Error(`${segments} segments`);
    const headerBytes = (4 + 4 * segments + 7) & ~7;
    if (data.length < headerBytes) return null;
    let bodyBytes = 0;
    for (let i = 0; i < segments; i++) bodyBytes += data.readUInt32LE(4 + 4 * i) * 8;
    const frameBytes = headerBytes + bodyBytes;
    if (frameBytes > MAX_FRAME_BYTES) throw new Error(`a ${frameBytes}-byte frame`);
    if (data.length < frameBytes) return null;
    // Message copies a Buffer it is given, so the slice may share memory.
    const frame = data.subarray(0, frameBytes);
    const rest = data.subarray(frameBytes);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#buffered = rest.length;
    return frame;
  }
}
