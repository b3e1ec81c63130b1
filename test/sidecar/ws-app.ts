// A WebSocket app that speaks RFC 6455 (enough of it for tests) and undici's
// WebSocket client pointed at a sidecar's listener: shared by the sidecar's
// WebSocket tests and the mutual TLS ones.

import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { Agent, WebSocket } from 'undici';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** One text frame from the server (unmasked, as RFC 6455 wants). */
export function frame(opcode: number, payload: Buffer): Buffer {
  const head = payload.length < 126 ? Buffer.from([0x80 | opcode, payload.length]) : Buffer.from([0x80 | opcode, 126, payload.length >> 8, payload.length & 0xff]);
  return Buffer.concat([head, payload]);
}

/**
 * An app that upgrades /chat (sends a greeting at once, then echoes each text
 * message upper-cased, answers a close with a close) and refuses /refuse with
 * 400 and a body.
 */
export async function startWsApp(): Promise<{ port: number; upgrades: () => number; open: () => number; close: () => Promise<void> }> {
  let upgrades = 0;
  const server = http.createServer((_req, res) => res.end('plain http'));
  const sockets = new Set<net.Socket>();
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    if (req.url === '/refuse') {
      socket.end('HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 12\r\nconnection: close\r\n\r\nno websocket');
      return;
    }
    upgrades++;
    const accept = createHash('sha1').update(String(req.headers['sec-websocket-key']) + GUID).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\nx-app: ws\r\n\r\n`);
    socket.write(frame(1, Buffer.from(`hello ${req.headers['x-forwarded-proto'] ?? ''} ${req.headers.host}`)));
    let buf = head;
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (buf.length < 2) return;
        const opcode = buf[0]! & 0x0f;
        let len = buf[1]! & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          off = 4;
        }
        if (buf.length < off + 4 + len) return;
        const mask = buf.subarray(off, off + 4);
        const payload = Buffer.from(buf.subarray(off + 4, off + 4 + len));
        for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!;
        buf = buf.subarray(off + 4 + len);
        if (opcode === 8) {
          socket.end(frame(8, payload));
          return;
        }
        // "bye": the app closes the WebSocket itself (close frame 1000, then its end of the connection).
        if (opcode === 1 && payload.toString() === 'bye') {
          socket.end(frame(8, Buffer.from([0x03, 0xe8])));
          return;
        }
        if (opcode === 1) socket.write(frame(1, Buffer.from(payload.toString().toUpperCase())));
      }
    };
    onData(Buffer.alloc(0));
    socket.on('data', onData);
    // The client's side ended without a close frame: end ours too, as WebSocket servers do.
    socket.on('end', () => socket.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    upgrades: () => upgrades,
    /** Upgraded connections the app still has open. */
    open: () => [...sockets].filter((x) => !x.destroyed).length,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** undici's WebSocket to ws://<host><path>, its connection made to the caller's outbound port (the mesh routes by Host). */
export function connect(port: number, host: string, path: string, closers: (() => Promise<void>)[]): WebSocket {
  const dispatcher = new Agent({ connect: (_opts, cb) => {
    const s = net.connect(port, '127.0.0.1', () => cb(null, s));
    s.once('error', (e) => cb(e, null));
  } });
  closers.push(() => dispatcher.close());
  return new WebSocket(`ws://${host}${path}`, { dispatcher } as never);
}

export function nextMessage(ws: WebSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    ws.addEventListener('message', (e) => resolve(String(e.data)), { once: true });
    ws.addEventListener('error', () => reject(new Error('websocket error')), { once: true });
  });
}

